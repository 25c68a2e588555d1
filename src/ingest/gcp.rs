//! Google Cloud Audit Logs for Secret Manager: Cloud Logging `LogEntry` records whose
//! `protoPayload` is an `AuditLog` (JSON lines from a Cloud Storage sink, or arrays). GKE's
//! Kubernetes audit entries in the same envelope go to the `k8s` source.

use serde_json::Value;

use super::fields::{
    at, optional_str, required_str, required_time, split_address, str_at, string_at,
};
use super::redact::REDACTED;
use super::source::{ParseOptions, Parsed, RecordMeta, Reject, Source};
use crate::event::{Action, ActorType, Event, Outcome, ResourceType, SourceKind};

const FORMAT: &str = "gcp_logentry";

/// A LogEntry carrying an AuditLog (and not GKE's Kubernetes audit, which is the `k8s` source).
pub fn recognizes(v: &Value) -> bool {
    let Some(payload) = v.get("protoPayload") else {
        return false;
    };
    let audit = payload
        .get("@type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.ends_with("google.cloud.audit.AuditLog"))
        || v.get("logName")
            .and_then(Value::as_str)
            .is_some_and(|l| l.contains("cloudaudit.googleapis.com"));
    audit && !is_gke(v)
}

/// GKE writes Kubernetes audit events as AuditLog entries of service `k8s.io`.
pub fn is_gke(v: &Value) -> bool {
    str_at(v, "protoPayload.serviceName") == Some("k8s.io")
}

pub struct GcpSource {
    opts: ParseOptions,
}

impl GcpSource {
    pub fn new(opts: ParseOptions) -> Self {
        GcpSource { opts }
    }
}

impl Source for GcpSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Gcp
    }

    fn parse(&mut self, mut record: Value, meta: &RecordMeta) -> Result<Parsed, Reject> {
        if !record.is_object() {
            return Err(Reject::new("not_an_object", "a LogEntry is a JSON object"));
        }
        if !at(&record, "protoPayload").is_some_and(Value::is_object) {
            return Err(Reject::missing("protoPayload"));
        }
        let mut warnings = redact_payload_data(&mut record);
        let v = &record;
        let time = required_time(v, "timestamp")?;
        if time.assumed_utc {
            warnings.push("time_without_zone_read_as_utc".into());
        }
        let log_name = required_str(v, "logName")?;
        let insert_id = required_str(v, "insertId")?;
        let method = required_str(v, "protoPayload.methodName")?;
        let timestamp_text = required_str(v, "timestamp")?;
        let mut e = Event::new(
            SourceKind::Gcp,
            FORMAT,
            format!("gcp:{log_name}:{timestamp_text}:{insert_id}"),
            time.nanos,
        );
        e.parse_warnings = warnings;
        e.source_event_id = Some(insert_id.to_owned());
        e.request_id = string_at(v, "operation.id");
        let project_id = str_at(v, "resource.labels.project_id")
            .map(str::to_owned)
            .or_else(|| project_of(log_name));
        e.tenant = project_id.clone();
        e.region = string_at(v, "resource.labels.location").or_else(|| {
            at(v, "protoPayload.resourceLocation.currentLocations")
                .and_then(|l| l.get(0))
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let service = optional_str(v, "protoPayload.serviceName")?.unwrap_or("unknown");
        e.service = service.trim_end_matches(".googleapis.com").to_owned();
        let short = method.rsplit('.').next().unwrap_or(method);
        e.operation = short.to_owned();
        e.attributes.insert("method".into(), method.to_owned());
        if let Some(kind) = log_name.rsplit("%2F").next().filter(|k| *k != log_name) {
            e.attributes.insert("log_type".into(), kind.to_owned());
        }
        for (key, path) in [
            ("severity", "severity"),
            ("permission", "protoPayload.authorizationInfo.0.permission"),
        ] {
            if let Some(val) = str_at_indexed(v, path) {
                e.attributes.insert(key.into(), val);
            }
        }

        set_outcome(&mut e, v);
        set_actor(&mut e, v);
        if let Some(ip) = str_at(v, "protoPayload.requestMetadata.callerIp") {
            // `gce-internal-ip`, `private` and the like are markers, not addresses.
            (e.src_ip, e.src_host) = split_address(ip);
        }
        e.user_agent = string_at(v, "protoPayload.requestMetadata.callerSuppliedUserAgent");
        let (action, secret_read) = classify(short);
        e.action = action;
        e.is_secret_read = secret_read;
        set_target(&mut e, v, project_id.as_deref());
        e.raw_location = meta.location();
        if self.opts.keep_raw {
            e.raw_event = Some(v.to_string());
        }
        Ok(Parsed::rows(vec![e]))
    }
}

/// `a.b.0.c`: like [`str_at`] with numeric segments indexing arrays.
fn str_at_indexed(v: &Value, path: &str) -> Option<String> {
    let mut cur = v;
    for part in path.split('.') {
        cur = match part.parse::<usize>() {
            Ok(i) => cur.get(i)?,
            Err(_) => cur.get(part)?,
        };
    }
    cur.as_str().map(str::to_owned)
}

/// `projects/acme-prod/logs/...` → `acme-prod`.
fn project_of(log_name: &str) -> Option<String> {
    log_name
        .strip_prefix("projects/")?
        .split('/')
        .next()
        .map(str::to_owned)
}

/// A secret version's payload would be secret material; audit logs do not carry it, but a
/// request or response copied into the entry must not bring it in.
fn redact_payload_data(record: &mut Value) -> Vec<String> {
    let mut warnings = Vec::new();
    for part in ["request", "response"] {
        if let Some(data) = record.pointer_mut(&format!("/protoPayload/{part}/payload/data")) {
            if data.as_str() != Some(REDACTED) {
                *data = Value::String(REDACTED.into());
                warnings.push(format!("secret_redacted:protoPayload.{part}.payload.data"));
            }
        }
    }
    let mut removed = Vec::new();
    if let Some(p) = record.get_mut("protoPayload") {
        super::redact::redact_secret_keys(p, "protoPayload", &mut removed);
    }
    warnings.extend(removed.into_iter().map(|p| format!("secret_redacted:{p}")));
    warnings
}

fn set_outcome(e: &mut Event, v: &Value) {
    let code = at(v, "protoPayload.status.code")
        .and_then(|c| c.as_i64().or_else(|| c.as_str()?.parse().ok()))
        .unwrap_or(0);
    let refused = at(v, "protoPayload.authorizationInfo")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter()
                .any(|x| x.get("granted").and_then(Value::as_bool) == Some(false))
        });
    e.outcome = match code {
        0 if refused => Outcome::Denied,
        0 => Outcome::Success,
        7 | 16 => Outcome::Denied,
        5 => Outcome::NotFound,
        _ => Outcome::Error,
    };
    if code == 0 && refused {
        e.status_code = Some("granted:false".into());
        e.http_status = Some(403);
    }
    if code != 0 {
        e.status_code = Some(code.to_string());
        e.http_status = match code {
            7 => Some(403),
            16 => Some(401),
            5 => Some(404),
            3 | 9 => Some(400),
            _ => None,
        };
    }
    e.error_message = string_at(v, "protoPayload.status.message");
}

fn set_actor(e: &mut Event, v: &Value) {
    let email = string_at(v, "protoPayload.authenticationInfo.principalEmail");
    let subject = string_at(v, "protoPayload.authenticationInfo.principalSubject");
    e.actor_type = match (&email, &subject) {
        (Some(m), _) if m.ends_with(".gserviceaccount.com") => ActorType::Workload,
        (Some(_), _) => ActorType::Human,
        (None, Some(s)) if s.starts_with("user:") || s.contains("/workforcePools/") => {
            ActorType::Human
        }
        (None, Some(_)) => ActorType::Workload,
        (None, None) => ActorType::Anonymous,
    };
    e.actor_id = email.clone().or_else(|| subject.clone());
    // A subject's last path segment can itself contain '/', so keep what follows `subject/`.
    e.actor_name = email.or_else(|| {
        subject.map(|s| {
            s.split_once("/subject/")
                .map_or(s.as_str(), |(_, tail)| tail)
                .to_owned()
        })
    });
    e.credential_id = string_at(v, "protoPayload.authenticationInfo.serviceAccountKeyName");
    // The first delegation hop is the principal who started the impersonation.
    if let Some(first) = at(
        v,
        "protoPayload.authenticationInfo.serviceAccountDelegationInfo",
    )
    .and_then(|d| d.get(0))
    {
        e.actor_origin_id = string_at(first, "firstPartyPrincipal.principalEmail")
            .or_else(|| string_at(first, "principalSubject"))
            .or_else(|| at(first, "thirdPartyPrincipal.thirdPartyClaims").map(Value::to_string));
    }
}

fn classify(method: &str) -> (Action, bool) {
    match method {
        "AccessSecretVersion" => (Action::Read, true),
        "GetSecret" | "GetSecretVersion" | "GetIamPolicy" | "GetLocation" => (Action::Read, false),
        "ListSecrets" | "ListSecretVersions" | "ListLocations" => (Action::List, false),
        "DeleteSecret" | "DestroySecretVersion" | "DisableSecretVersion" => (Action::Delete, false),
        "SetIamPolicy" => (Action::Policy, false),
        m if m.starts_with("Create")
            || m.starts_with("Add")
            || m.starts_with("Update")
            || m.starts_with("Enable") =>
        {
            (Action::Write, false)
        }
        _ => (Action::Other, false),
    }
}

/// `projects/<P>/secrets/<N>[/versions/<V>]` → canonical `projects/<project id>/secrets/<N>`.
/// A project number in the name is replaced by the entry's project id when the entry names it.
fn set_target(e: &mut Event, v: &Value, project_id: Option<&str>) {
    let Some(name) =
        str_at(v, "protoPayload.resourceName").or_else(|| str_at(v, "protoPayload.request.name"))
    else {
        e.target_count = 0;
        return;
    };
    let parts: Vec<&str> = name.split('/').collect();
    let project = match (parts.first(), parts.get(1)) {
        (Some(&"projects"), Some(p)) => *p,
        _ => {
            e.resource_id = Some(name.to_owned());
            return;
        }
    };
    let project = match project_id {
        Some(id) if project.chars().all(|c| c.is_ascii_digit()) && id != project => {
            e.attributes
                .insert("project_number".into(), project.to_owned());
            id
        }
        _ => project,
    };
    e.resource_scope = Some(format!("projects/{project}"));
    if parts.get(2) == Some(&"secrets") {
        if let Some(secret) = parts.get(3) {
            e.resource_type = ResourceType::GcpSecret;
            e.resource_id = Some(format!("projects/{project}/secrets/{secret}"));
            e.resource_name = Some((*secret).to_owned());
            if parts.get(4) == Some(&"versions") {
                e.resource_version = parts.get(5).map(|s| (*s).to_owned());
            }
            return;
        }
    }
    // A list or another collection-level call: no single secret is named.
    e.target_count = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_classify() {
        assert_eq!(classify("AccessSecretVersion"), (Action::Read, true));
        assert_eq!(classify("ListSecrets"), (Action::List, false));
        assert_eq!(classify("AddSecretVersion"), (Action::Write, false));
        assert_eq!(classify("DestroySecretVersion"), (Action::Delete, false));
        assert_eq!(classify("SetIamPolicy"), (Action::Policy, false));
    }

    #[test]
    fn project_numbers_become_the_entry_project_id() {
        let v = serde_json::json!({"protoPayload": {"resourceName": "projects/412345678901/secrets/db-password/versions/3"}});
        let mut e = Event::new(SourceKind::Gcp, FORMAT, "x".into(), 0);
        set_target(&mut e, &v, Some("acme-prod"));
        assert_eq!(
            e.resource_id.as_deref(),
            Some("projects/acme-prod/secrets/db-password")
        );
        assert_eq!(e.resource_version.as_deref(), Some("3"));
        assert_eq!(
            e.attributes.get("project_number").map(String::as_str),
            Some("412345678901")
        );
    }
}
