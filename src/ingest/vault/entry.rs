//! One Vault audit entry → one row.
//!
//! Two ways in, one way out: [`EntryFields`] is what a row is made of, borrowed from either a
//! typed parse of the entry's text (the fast path: no allocation per field, nothing built for
//! the parts a row does not use) or a `serde_json::Value` (the exact path: every field checked
//! and named in rejects, secret values redacted). [`build_into`] makes the row from either. The fast
//! path declines (returns `None`) whenever the exact path has something to do: a field of the
//! wrong type, a missing one, a value to redact.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::event::{Action, ActorType, Event, Outcome, ResourceType, SourceKind};
use crate::ingest::fields::{
    address_parts, at, concat, optional_str, required_time, scalar_text, str_at, JsonStr, Obj,
};
use crate::ingest::redact::{redact_unhashed_strings, REDACTED, VAULT_HMAC_PREFIX};
use crate::ingest::refill;
use crate::ingest::source::{utf8, ParseOptions, RecordMeta, Reject};
use crate::ingest::timestamp::{parse_time, ParsedTime};

use super::scan::{DataScan, HeadersScan};

pub const FORMAT: &str = "vault_audit";

/// The caller as an `auth` block describes it.
#[derive(Debug, Default, Clone)]
struct AuthFields<'a> {
    display_name: Option<&'a str>,
    entity_id: Option<&'a str>,
    username: Option<&'a str>,
    role: Option<&'a str>,
    accessor: Option<&'a str>,
    policies: Vec<&'a str>,
    token_policies: Vec<&'a str>,
    identity_policies: Vec<&'a str>,
}

impl AuthFields<'_> {
    fn names_someone(&self) -> bool {
        self.display_name.is_some() || self.entity_id.is_some()
    }
}

/// Everything a row is made of.
#[derive(Debug, Default)]
struct EntryFields<'a> {
    entry_type: &'a str,
    request_id: Option<&'a str>,
    client_id: Option<&'a str>,
    operation: Option<&'a str>,
    path: Option<&'a str>,
    mount_point: Option<&'a str>,
    mount_type: Option<&'a str>,
    response_mount_type: Option<&'a str>,
    mount_accessor: Option<&'a str>,
    namespace_id: Option<&'a str>,
    namespace_path: Option<&'a str>,
    remote_address: Option<&'a str>,
    remote_port: Option<u64>,
    user_agent: Option<&'a str>,
    error: Option<&'a str>,
    allowed: Option<bool>,
    token_type: Option<&'a str>,
    forwarded_from: Option<&'a str>,
    auth: AuthFields<'a>,
    response_auth: AuthFields<'a>,
    version: Option<String>,
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// An event for [`build_into`] to write a row into.
fn new_row() -> Event {
    Event::new(SourceKind::Vault, FORMAT, String::new(), 0)
}

/// The attributes of a Vault row.
const ATTRIBUTES: [&str; 8] = [
    "entry_type",
    "mount_type",
    "mount_accessor",
    "namespace_id",
    "token_type",
    "forwarded_from",
    "line_prefix",
    "remote_port",
];

/// Builds the row for one entry into `e`, writing every field over what it held (a parsing
/// thread reuses one event for all its rows: see [`crate::ingest::refill`]). `is_request`: a
/// request entry, which has no response part; `uid_text` is hashed into the uid when the entry
/// has no request id; `raw` is the text kept as `raw_event`.
#[allow(
    clippy::too_many_arguments,
    reason = "the entry's fields and where they came from, and the event and raw text written"
)]
fn build_into(
    e: &mut Event,
    f: &EntryFields,
    time: ParsedTime,
    opts: &ParseOptions,
    meta: &RecordMeta,
    is_request: bool,
    uid_text: &[u8],
    raw: Option<&str>,
) {
    // Every field of the event is written below, so nothing of an earlier row stays: a field
    // added to `Event` breaks this pattern until it is named here (and written below).
    let Event {
        event_uid: _,
        source: _,
        source_format: _,
        event_time: _,
        source_event_id: _,
        request_id: _,
        tenant: _,
        region: _,
        service: _,
        operation: _,
        action: _,
        is_secret_read: _,
        outcome: _,
        status_code: _,
        http_status: _,
        error_message: _,
        actor_id: _,
        actor_name: _,
        actor_type: _,
        actor_role: _,
        actor_origin_id: _,
        via_service: _,
        credential_id: _,
        actor_groups: _,
        mfa: _,
        src_ip: _,
        src_host: _,
        user_agent: _,
        resource_type: _,
        resource_id: _,
        resource_name: _,
        resource_version: _,
        resource_scope: _,
        target_index: _,
        target_count: _,
        raw_event: _,
        raw_location: _,
        parse_warnings: _,
        attributes: _,
    } = e;
    let cluster = &opts.vault_cluster;
    match f.request_id {
        Some(id) => refill::text(&mut e.event_uid, &["vault:", cluster, ":", id]),
        None => {
            use sha2::Digest;
            let hash = hex::encode(sha2::Sha256::digest(uid_text));
            refill::text(&mut e.event_uid, &["vault:", cluster, ":sha256:", &hash]);
        }
    }
    e.source = SourceKind::Vault;
    e.source_format = FORMAT;
    e.event_time = time.nanos;
    e.parse_warnings.clear();
    if time.assumed_utc {
        e.parse_warnings
            .push("time_without_zone_read_as_utc".to_owned());
    }
    refill::opt(&mut e.source_event_id, f.request_id);
    refill::opt(&mut e.request_id, f.request_id);
    let ns_path = f
        .namespace_path
        .map(|p| p.trim_end_matches('/'))
        .filter(|p| !p.is_empty());
    match ns_path {
        Some(ns) => refill::opt_parts(&mut e.tenant, &[cluster, "/", ns]),
        None => refill::opt_parts(&mut e.tenant, &[cluster]),
    }
    e.region = None;
    let operation = f.operation.unwrap_or("unknown");
    let path = f.path.unwrap_or("");
    let mount_type = f.mount_type.or(f.response_mount_type);
    match mount_type {
        Some(m) => refill::text(&mut e.service, &["vault:", m]),
        None => refill::text(&mut e.service, &["vault"]),
    }
    refill::text(&mut e.operation, &[operation]);

    // Outcome: the request or response `error`, or an explicit policy decision.
    e.outcome = match (f.error, f.allowed) {
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
    e.status_code = f.error.map(short_error);
    refill::opt(&mut e.error_message, f.error);
    e.http_status = (e.outcome == Outcome::Denied).then_some(403);
    set_actor(e, f);
    set_target(e, f, cluster, path, operation, mount_type);
    let (ip, host) = f.remote_address.map(address_parts).unwrap_or_default();
    refill::opt(&mut e.src_ip, ip.as_deref());
    refill::opt(&mut e.src_host, host.as_deref());
    refill::opt(&mut e.user_agent, f.user_agent);
    e.target_index = 0;
    e.target_count = 1;
    refill::opt(&mut e.raw_event, raw);
    // Only the attributes written below (an event that held another source's row is cleared).
    e.attributes.retain(|k, _| ATTRIBUTES.contains(&k.as_str()));
    for (key, val) in [
        ("entry_type", Some(f.entry_type)),
        ("mount_type", f.mount_type),
        ("mount_accessor", f.mount_accessor),
        ("namespace_id", f.namespace_id),
        ("token_type", f.token_type),
        ("forwarded_from", f.forwarded_from),
    ] {
        refill::attribute(&mut e.attributes, key, non_empty(val));
    }
    let prefix = meta.prefix.as_deref().map(str::trim);
    refill::attribute(&mut e.attributes, "line_prefix", prefix);
    let mut digits = itoa::Buffer::new();
    let port = f.remote_port.map(|port| digits.format(port));
    refill::attribute(&mut e.attributes, "remote_port", port);
    meta.location_into(&mut e.raw_location);
}

// ---------------------------------------------------------------------------------------------
// The exact path: a `Value`, every field checked, secret values redacted.

fn auth_from_value<'a>(v: &'a Value, prefix: &str) -> AuthFields<'a> {
    let get = |field: &str| str_at(v, &format!("{prefix}.{field}"));
    let list = |field: &str| -> Vec<&'a str> {
        at(v, &format!("{prefix}.{field}"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    AuthFields {
        display_name: get("display_name"),
        entity_id: get("entity_id"),
        username: get("metadata.username"),
        role: get("metadata.role").or_else(|| get("metadata.role_name")),
        accessor: get("accessor"),
        policies: list("policies"),
        token_policies: list("token_policies"),
        identity_policies: list("identity_policies"),
    }
}

/// The exact path: builds the row from a parsed entry, redacting what a `log_raw` device wrote
/// in clear, and rejecting with the field's name what is missing or mistyped.
pub fn from_value(
    record: &mut Value,
    opts: &ParseOptions,
    meta: &RecordMeta,
    is_request: bool,
) -> Result<Event, Reject> {
    let time = required_time(record, "time")?;
    if !at(record, "request").is_some_and(Value::is_object) {
        return Err(Reject::missing("request"));
    }
    let redacted = redact_raw_values(record);
    let v: &Value = record;
    let f = EntryFields {
        entry_type: str_at(v, "type").unwrap_or(""),
        request_id: optional_str(v, "request.id")?,
        client_id: str_at(v, "request.client_id"),
        operation: optional_str(v, "request.operation")?,
        path: optional_str(v, "request.path")?,
        mount_point: str_at(v, "request.mount_point"),
        mount_type: str_at(v, "request.mount_type"),
        response_mount_type: str_at(v, "response.mount_type"),
        mount_accessor: str_at(v, "request.mount_accessor"),
        namespace_id: str_at(v, "request.namespace.id"),
        namespace_path: str_at(v, "request.namespace.path"),
        remote_address: str_at(v, "request.remote_address"),
        remote_port: at(v, "request.remote_port").and_then(Value::as_u64),
        user_agent: at(v, "request.headers.user-agent")
            .and_then(|h| h.as_array().and_then(|a| a.first()).or(Some(h)))
            .and_then(Value::as_str),
        error: optional_str(v, "error")?,
        allowed: at(v, "auth.policy_results.allowed").and_then(Value::as_bool),
        token_type: str_at(v, "auth.token_type"),
        forwarded_from: str_at(v, "forwarded_from"),
        auth: auth_from_value(v, "auth"),
        response_auth: auth_from_value(v, "response.auth"),
        // KV v2 reads name it in `metadata`, writes at the top of the response data.
        version: [
            "response.data.metadata.version",
            "response.data.version",
            "request.data.metadata.version",
            "request.data.version",
        ]
        .iter()
        .find_map(|p| at(v, p))
        .and_then(scalar_text),
    };
    let text = v.to_string();
    let mut e = new_row();
    build_into(
        &mut e,
        &f,
        time,
        opts,
        meta,
        is_request,
        text.as_bytes(),
        None,
    );
    if redacted > 0 {
        // After the time warning, before the path ones, as the warnings arose.
        let at = usize::from(time.assumed_utc);
        e.parse_warnings
            .insert(at, format!("secret_redacted:log_raw_values={redacted}"));
    }
    if opts.keep_raw {
        e.raw_event = Some(text);
    }
    Ok(e)
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
    // Vault logs a request header only when an operator lists it in
    // `sys/config/auditing/request-headers`, and in clear unless `hmac = true`: a credential
    // header logged so is a live token.
    if let Some(Value::Object(headers)) =
        record.get_mut("request").and_then(|r| r.get_mut("headers"))
    {
        for (name, value) in headers.iter_mut() {
            if is_credential_header(name) {
                n += redact_unhashed_strings(value);
            }
        }
    }
    n
}

/// Request headers that carry a credential (names compared ignoring ASCII case: Vault logs them
/// lowercase, an operator may list them otherwise).
pub(super) fn is_credential_header(name: &str) -> bool {
    const CREDENTIAL_HEADERS: [&str; 5] = [
        "authorization",
        "proxy-authorization",
        "x-vault-token",
        "cookie",
        "x-vault-wrap-token",
    ];
    CREDENTIAL_HEADERS
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

fn is_clear_token(s: &str) -> bool {
    !s.is_empty() && !s.starts_with(VAULT_HMAC_PREFIX) && s != REDACTED
}

/// Unhashed `client_token` / `token` fields (a `log_raw` device writes live tokens).
fn redact_token_fields(v: &mut Value) -> usize {
    let Some(map) = v.as_object_mut() else {
        return 0;
    };
    let mut n = 0;
    for key in ["client_token", "token"] {
        if let Some(Value::String(s)) = map.get_mut(key) {
            if is_clear_token(s) {
                *s = REDACTED.into();
                n += 1;
            }
        }
    }
    n
}

// ---------------------------------------------------------------------------------------------
// The fast path: a typed parse that borrows from the text.

#[derive(Deserialize)]
struct TypedEntry<'a> {
    #[serde(borrow)]
    time: Option<JsonStr<'a>>,
    #[serde(rename = "type", borrow)]
    kind: Option<JsonStr<'a>>,
    #[serde(borrow)]
    auth: Option<Obj<TypedAuth<'a>>>,
    #[serde(borrow)]
    request: Option<Obj<TypedRequest<'a>>>,
    #[serde(borrow)]
    response: Option<Obj<TypedResponse<'a>>>,
    #[serde(borrow)]
    error: Option<JsonStr<'a>>,
    #[serde(borrow)]
    forwarded_from: Option<JsonStr<'a>>,
}

#[derive(Deserialize, Default)]
struct TypedAuth<'a> {
    #[serde(borrow)]
    client_token: Option<JsonStr<'a>>,
    #[serde(borrow)]
    token: Option<JsonStr<'a>>,
    #[serde(borrow)]
    accessor: Option<JsonStr<'a>>,
    #[serde(borrow)]
    display_name: Option<JsonStr<'a>>,
    #[serde(borrow)]
    entity_id: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    policies: Option<Vec<JsonStr<'a>>>,
    #[serde(borrow, default)]
    token_policies: Option<Vec<JsonStr<'a>>>,
    #[serde(borrow, default)]
    identity_policies: Option<Vec<JsonStr<'a>>>,
    #[serde(borrow)]
    metadata: Option<Obj<TypedMetadata<'a>>>,
    #[serde(borrow)]
    token_type: Option<JsonStr<'a>>,
    policy_results: Option<Obj<TypedPolicyResults>>,
}

#[derive(Deserialize, Default)]
struct TypedMetadata<'a> {
    #[serde(borrow)]
    username: Option<JsonStr<'a>>,
    #[serde(borrow)]
    role: Option<JsonStr<'a>>,
    #[serde(borrow)]
    role_name: Option<JsonStr<'a>>,
}

#[derive(Deserialize)]
struct TypedPolicyResults {
    allowed: Option<bool>,
}

#[derive(Deserialize)]
struct TypedRequest<'a> {
    #[serde(borrow)]
    id: Option<JsonStr<'a>>,
    #[serde(borrow)]
    client_id: Option<JsonStr<'a>>,
    #[serde(borrow)]
    operation: Option<JsonStr<'a>>,
    #[serde(borrow)]
    path: Option<JsonStr<'a>>,
    #[serde(borrow)]
    mount_point: Option<JsonStr<'a>>,
    #[serde(borrow)]
    mount_type: Option<JsonStr<'a>>,
    #[serde(borrow)]
    mount_accessor: Option<JsonStr<'a>>,
    #[serde(borrow)]
    namespace: Option<Obj<TypedNamespace<'a>>>,
    #[serde(borrow)]
    remote_address: Option<JsonStr<'a>>,
    remote_port: Option<u64>,
    #[serde(borrow)]
    client_token: Option<JsonStr<'a>>,
    #[serde(borrow)]
    token: Option<JsonStr<'a>>,
    #[serde(borrow)]
    headers: Option<HeadersScan<'a>>,
    data: Option<DataScan>,
}

#[derive(Deserialize)]
struct TypedNamespace<'a> {
    #[serde(borrow)]
    id: Option<JsonStr<'a>>,
    #[serde(borrow)]
    path: Option<JsonStr<'a>>,
}

#[derive(Deserialize)]
struct TypedResponse<'a> {
    #[serde(borrow)]
    mount_type: Option<JsonStr<'a>>,
    data: Option<DataScan>,
    #[serde(borrow)]
    auth: Option<Obj<TypedAuth<'a>>>,
    #[serde(borrow)]
    wrap_info: Option<&'a RawValue>,
}

fn auth_fields<'a>(a: &'a TypedAuth<'a>) -> AuthFields<'a> {
    let list = |l: &'a Option<Vec<JsonStr<'a>>>| -> Vec<&'a str> {
        l.iter().flatten().map(|s| s.as_ref()).collect()
    };
    let meta = a.metadata.as_ref();
    AuthFields {
        display_name: non_empty(a.display_name.as_deref()),
        entity_id: non_empty(a.entity_id.as_deref()),
        username: non_empty(meta.and_then(|m| m.username.as_deref())),
        role: non_empty(meta.and_then(|m| m.role.as_deref()))
            .or_else(|| non_empty(meta.and_then(|m| m.role_name.as_deref()))),
        accessor: non_empty(a.accessor.as_deref()),
        policies: list(&a.policies),
        token_policies: list(&a.token_policies),
        identity_policies: list(&a.identity_policies),
    }
}

/// The fast path; `None` when the entry needs the exact path.
pub fn from_text(
    text: &[u8],
    opts: &ParseOptions,
    meta: &RecordMeta,
    is_request: bool,
) -> Option<Event> {
    let mut e = new_row();
    from_text_into(&mut e, text, opts, meta, is_request)?;
    Some(e)
}

/// [`from_text`] into `e`, writing every field over what it held; `None` (and `e` untouched)
/// when the entry needs the exact path.
pub fn from_text_into(
    e: &mut Event,
    text: &[u8],
    opts: &ParseOptions,
    meta: &RecordMeta,
    is_request: bool,
) -> Option<()> {
    // Checked as UTF-8 once, whole: parsing a `str` skips the check of every string in it
    // (it was 3 % of a Vault ingest's CPU, called once per field).
    let text = utf8(text)?;
    let entry: Obj<TypedEntry> = serde_json::from_str(text).ok()?;
    let time = parse_time(entry.time.as_deref()?).ok()?;
    let request: &TypedRequest = entry.request.as_deref()?;
    let auth = entry.auth.as_deref();
    let response = entry.response.as_deref();
    // Anything the exact path would redact or read specially sends the entry there: a
    // `client_token` or `token` not HMAC'd (in `auth`, `request` and `response.auth`, as
    // `redact_token_fields` reads them) among them.
    let clear = |t: &Option<JsonStr>| t.as_deref().is_some_and(is_clear_token);
    let clear_token =
        |a: Option<&TypedAuth>| a.is_some_and(|a| clear(&a.client_token) || clear(&a.token));
    if clear_token(auth)
        || clear(&request.client_token)
        || clear(&request.token)
        || clear_token(response.and_then(|r| r.auth.as_deref()))
        || response.is_some_and(|r| r.wrap_info.is_some())
        || request
            .headers
            .as_ref()
            .is_some_and(|h| h.clear_credential || h.decline)
        || request.data.as_ref().is_some_and(|d| d.clear)
        || response
            .and_then(|r| r.data.as_ref())
            .is_some_and(|d| d.clear)
    {
        return None;
    }
    let empty = TypedAuth::default();
    let f = EntryFields {
        entry_type: entry.kind.as_deref().unwrap_or(""),
        request_id: non_empty(request.id.as_deref()),
        client_id: non_empty(request.client_id.as_deref()),
        operation: non_empty(request.operation.as_deref()),
        path: non_empty(request.path.as_deref()),
        mount_point: non_empty(request.mount_point.as_deref()),
        mount_type: non_empty(request.mount_type.as_deref()),
        response_mount_type: non_empty(response.and_then(|r| r.mount_type.as_deref())),
        mount_accessor: non_empty(request.mount_accessor.as_deref()),
        namespace_id: non_empty(request.namespace.as_ref().and_then(|n| n.id.as_deref())),
        namespace_path: non_empty(request.namespace.as_ref().and_then(|n| n.path.as_deref())),
        remote_address: non_empty(request.remote_address.as_deref()),
        remote_port: request.remote_port,
        user_agent: request
            .headers
            .as_ref()
            .and_then(|h| h.user_agent.as_deref()),
        error: non_empty(entry.error.as_deref()),
        allowed: auth
            .and_then(|a| a.policy_results.as_ref())
            .and_then(|p| p.allowed),
        token_type: non_empty(auth.and_then(|a| a.token_type.as_deref())),
        forwarded_from: non_empty(entry.forwarded_from.as_deref()),
        auth: auth_fields(auth.unwrap_or(&empty)),
        response_auth: auth_fields(response.and_then(|r| r.auth.as_deref()).unwrap_or(&empty)),
        // The first version there, as the exact path takes it (KV v2 reads name it in
        // `metadata`, writes at the top of the data; the response's before the request's).
        version: response
            .and_then(|r| r.data.as_ref())
            .and_then(DataScan::version)
            .or_else(|| request.data.as_ref().and_then(DataScan::version))
            .and_then(scalar_text),
    };
    // Without a request id the uid hashes the entry as the exact path would serialize it.
    let uid_text = if f.request_id.is_none() {
        serde_json::from_str::<Value>(text)
            .ok()?
            .to_string()
            .into_bytes()
    } else {
        Vec::new()
    };
    let raw = opts.keep_raw.then_some(text);
    build_into(e, &f, time, opts, meta, is_request, &uid_text, raw);
    Some(())
}

// ---------------------------------------------------------------------------------------------
// Shared rules.

/// `1 error occurred:\n\t* permission denied\n\n` → `permission denied`.
pub fn short_error(err: &str) -> String {
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

fn set_actor(e: &mut Event, f: &EntryFields) {
    // A login request carries no caller yet; its response names who logged in.
    let a = if f.auth.names_someone() {
        &f.auth
    } else {
        &f.response_auth
    };
    let display = a.display_name;
    refill::opt(&mut e.actor_id, a.entity_id.or(display).or(f.client_id));
    refill::opt(&mut e.actor_name, a.username.or(display));
    refill::opt(&mut e.actor_role, a.role);
    e.actor_origin_id = None;
    e.via_service = None;
    refill::opt(&mut e.credential_id, a.accessor);
    e.mfa = None;
    let groups: Cow<[&str]> = if a.policies.is_empty() {
        let mut merged: Vec<&str> = a
            .token_policies
            .iter()
            .chain(&a.identity_policies)
            .copied()
            .collect();
        merged.dedup();
        Cow::Owned(merged)
    } else {
        Cow::Borrowed(&a.policies)
    };
    e.actor_type = actor_type(display, &groups, e.actor_id.is_some());
    refill::list(&mut e.actor_groups, groups.iter().copied());
}

fn actor_type(display: Option<&str>, policies: &[&str], known: bool) -> ActorType {
    if policies.contains(&"root") || display == Some("root") {
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
    f: &EntryFields,
    cluster: &str,
    path: &str,
    operation: &str,
    mount_type: Option<&str>,
) {
    let mount = f
        .mount_point
        .filter(|m| path.starts_with(m))
        .map(Cow::Borrowed)
        .or_else(|| {
            // Older Vault versions do not log the mount: take the first path segment.
            path.split_once('/')
                .map(|(first, _)| Cow::Owned(concat(&[first, "/"])))
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
        e.resource_type = ResourceType::None;
        e.resource_name = None;
        e.resource_id = None;
        e.resource_scope = None;
        e.resource_version = None;
        return;
    }
    let ns = f.namespace_path.unwrap_or("");
    e.resource_type = ResourceType::VaultPath;
    refill::opt_parts(&mut e.resource_name, &[&mount, key]);
    refill::opt_parts(
        &mut e.resource_id,
        &["vault:", cluster, "/", ns, &mount, key],
    );
    refill::opt_parts(&mut e.resource_scope, &[ns, &mount]);
    refill::opt(&mut e.resource_version, f.version.as_deref());
}
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
    use crate::ingest::source::{Prepared, RowSink};
    use crate::store::chunk::ChunkBuilder;

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

    fn meta() -> RecordMeta {
        RecordMeta {
            line: 1,
            element: None,
            prefix: None,
            container: crate::ingest::splitter::Container::TopLevel,
            file: "x".into(),
        }
    }

    fn keeping_raw() -> ParseOptions {
        ParseOptions {
            keep_raw: true,
            ..ParseOptions::default()
        }
    }

    /// A parsing thread builds every row into one event: whatever rows came before, each row
    /// is the one a fresh event gets (no field, warning, list item or attribute of an earlier
    /// row stays).
    #[test]
    fn a_row_built_over_another_is_the_row_built_fresh() {
        let full = r#"{"time":"2026-03-02T10:00:00","type":"response","auth":{"display_name":"approle","entity_id":"e1","accessor":"hmac-sha256:a","policies":["default","root"],"metadata":{"username":"u","role":"r"},"token_type":"service","policy_results":{"allowed":false}},"request":{"id":"r1","client_id":"c1","operation":"read","path":"kv2/data/app/db","mount_point":"kv2/","mount_accessor":"kv_1","namespace":{"id":"ns1","path":"team/"},"remote_address":"::ffff:10.0.0.1","remote_port":4242,"headers":{"user-agent":["curl"]}},"response":{"data":{"metadata":{"version":3}}},"error":"1 error occurred:\n\t* permission denied\n\n","forwarded_from":"10.0.0.9"}"#;
        let bare = r#"{"time":"2026-03-02T10:00:01Z","type":"response","request":{"operation":"list","path":""}}"#;
        let login = r#"{"time":"2026-03-02T10:00:02Z","type":"response","request":{"id":"r3","operation":"update","path":"auth/approle/login","mount_type":"approle","remote_address":"gateway"},"response":{"auth":{"display_name":"approle","token_policies":["a","a","b"],"identity_policies":["b"]}}}"#;
        let opts = ParseOptions::default();
        let mut prefixed = meta();
        prefixed.prefix = Some(" vault: ".into());
        prefixed.element = Some(2);
        let plain = meta();
        let entries = [(full, &prefixed), (bare, &plain), (login, &plain)];
        let fresh: Vec<Event> = entries
            .iter()
            .map(|(text, meta)| from_text(text.as_bytes(), &opts, meta, false).unwrap())
            .collect();
        assert_eq!(
            fresh[0].parse_warnings.len(),
            2,
            "{:?}",
            fresh[0].parse_warnings
        );
        assert_eq!(fresh[0].attributes.len(), 7, "{:?}", fresh[0].attributes);
        assert_eq!(fresh[0].raw_location, "x#1[2]");
        assert!(fresh[1].resource_id.is_none() && fresh[1].attributes.len() == 1);
        assert_eq!(fresh[2].actor_groups, ["a", "b"]);
        let mut reused = Event::new(crate::event::SourceKind::Gcp, "", String::new(), 0);
        reused.attributes.insert("gcp_only".into(), "x".into());
        for order in [
            [0, 1, 2],
            [2, 1, 0],
            [1, 0, 2],
            [0, 2, 1],
            [1, 2, 0],
            [2, 0, 1],
        ] {
            for i in order {
                let (text, meta) = entries[i];
                from_text_into(&mut reused, text.as_bytes(), &opts, meta, false).unwrap();
                assert_eq!(reused, fresh[i], "entry {i} after others in {order:?}");
            }
        }

        // As a parsing thread does it: through `prepare` with a sink, raw text kept, each row
        // into the chunk's columns; the same columns as the events built fresh.
        let opts = keeping_raw();
        let mut sunk = ChunkBuilder::new(true);
        let mut pushed = ChunkBuilder::new(true);
        for i in [0, 1, 2, 0, 2, 1] {
            let (text, meta) = entries[i];
            let rec = crate::ingest::splitter::Splitter::new(text.as_bytes(), 1 << 20)
                .next()
                .unwrap()
                .unwrap();
            let sink = RowSink {
                chunk: &mut sunk,
                scratch: &mut reused,
            };
            let prepared = super::super::prepare(&rec, &opts, meta, Some(sink));
            assert!(matches!(prepared, Some(Prepared::Built(_))), "{prepared:?}");
            pushed.push([from_text(text.as_bytes(), &opts, meta, false).unwrap()]);
        }
        let (sunk, pushed) = (
            sunk.finish().unwrap().unwrap(),
            pushed.finish().unwrap().unwrap(),
        );
        assert_eq!(sunk.batch, pushed.batch);
        assert_eq!(
            sunk.batch.column_by_name("raw_event").unwrap().null_count(),
            0
        );
    }

    /// A credential header logged in clear (an operator audited it without `hmac = true`) is a
    /// live token: it never reaches the row, and the row says a value was removed.
    #[test]
    fn clear_credential_headers_are_redacted() {
        let opts = keeping_raw();
        let meta = meta();
        let text = r#"{"time":"2026-03-02T10:00:00Z","type":"response","auth":{"entity_id":"e1"},"request":{"id":"r1","operation":"read","path":"secret/data/a","headers":{"x-vault-token":["hvs.CAESIlive"],"authorization":["hmac-sha256:ab"],"user-agent":["vault-cli"]}},"response":{}}"#;
        assert!(from_text(text.as_bytes(), &opts, &meta, false).is_none());
        let mut value: Value = serde_json::from_str(text).unwrap();
        let e = from_value(&mut value, &opts, &meta, false).unwrap();
        let raw = e.raw_event.as_deref().unwrap();
        assert!(!raw.contains("hvs.CAESIlive"), "{raw}");
        assert!(raw.contains("hmac-sha256:ab"), "{raw}");
        assert_eq!(e.user_agent.as_deref(), Some("vault-cli"));
        assert!(!e.parse_warnings.is_empty());
    }

    /// A `token` not HMAC'd (in `auth`, `request` or `response.auth`) is a live token, as a
    /// `client_token` is: the fast path leaves the entry to the exact path, which removes it.
    #[test]
    fn clear_tokens_under_either_name_are_redacted() {
        let opts = keeping_raw();
        let meta = meta();
        for (auth, request, response) in [
            (r#"{"entity_id":"e1","token":"hvs.CAESIlive"}"#, "", "{}"),
            (r#"{"entity_id":"e1"}"#, r#","token":"hvs.CAESIlive""#, "{}"),
            (
                r#"{"entity_id":"e1"}"#,
                "",
                r#"{"auth":{"client_token":"hmac-sha256:ab","token":"hvs.CAESIlive"}}"#,
            ),
        ] {
            let text = format!(
                r#"{{"time":"2026-03-02T10:00:00Z","type":"response","auth":{auth},"request":{{"id":"r1","operation":"read","path":"secret/data/a"{request}}},"response":{response}}}"#
            );
            assert!(
                from_text(text.as_bytes(), &opts, &meta, false).is_none(),
                "{text}"
            );
            let mut value: Value = serde_json::from_str(&text).unwrap();
            let e = from_value(&mut value, &opts, &meta, false).unwrap();
            let raw = e.raw_event.as_deref().unwrap();
            assert!(!raw.contains("hvs.CAESIlive"), "{raw}");
            assert!(e
                .parse_warnings
                .iter()
                .any(|w| w.starts_with("secret_redacted")));
        }
        // An HMAC'd token is no secret: the fast path keeps the entry.
        let text = r#"{"time":"2026-03-02T10:00:00Z","type":"response","auth":{"entity_id":"e1","token":"hmac-sha256:ab"},"request":{"id":"r1","operation":"read","path":"secret/data/a"},"response":{}}"#;
        assert!(from_text(text.as_bytes(), &opts, &meta, false).is_some());
    }

    /// serde_json reads a derived struct from an array too; the exact path reads objects only.
    /// An entry, or a part of one, written as an array never makes a row by the fast path.
    #[test]
    fn arrays_where_objects_belong_take_the_exact_path() {
        let opts = ParseOptions::default();
        let meta = meta();
        let entry = |auth: &str, request: &str, response: &str| {
            format!(
                r#"{{"time":"2026-03-02T10:00:00Z","type":"response","auth":{auth},"request":{request},"response":{response}}}"#
            )
        };
        let request = r#"{"id":"r1","operation":"read","path":"secret/data/a"}"#;
        let good = entry(r#"{"entity_id":"e1"}"#, request, "{}");
        assert!(from_text(good.as_bytes(), &opts, &meta, false).is_some());
        for text in [
            entry(
                r#"{"entity_id":"e1","policy_results":[false]}"#,
                request,
                "{}",
            ),
            entry(r#"{"entity_id":"e1","metadata":["u"]}"#, request, "{}"),
            entry(
                r#"{"entity_id":"e1"}"#,
                r#"["r1",null,"read","secret/data/a"]"#,
                "{}",
            ),
            entry(r#"{"entity_id":"e1"}"#, request, r#"["kv",null,null,null]"#),
            entry(
                r#"{"entity_id":"e1"}"#,
                r#"{"id":"r1","operation":"read","path":"secret/data/a","namespace":["ns1"]}"#,
                "{}",
            ),
            format!(r#"["2026-03-02T10:00:00Z","response",{{}},{request},{{}},null,null]"#),
        ] {
            assert!(
                from_text(text.as_bytes(), &opts, &meta, false).is_none(),
                "{text}"
            );
        }
        // Nor is a request so written held for pairing (its response would count it merged).
        for text in [
            r#"["request",{"id":"r1"}]"#,
            r#"{"time":"2026-03-02T10:00:00Z","type":"request","request":["r1"]}"#,
        ] {
            let rec = crate::ingest::splitter::RawRecord {
                bytes: text.as_bytes().to_vec(),
                prefix: None,
                line: 1,
                offset: 0,
                index: 0,
                element: None,
                container: crate::ingest::splitter::Container::TopLevel,
                problem: None,
            };
            assert!(
                super::super::prepare(&rec, &opts, &meta, None).is_none(),
                "{text}"
            );
        }
    }

    /// Guards the fast path: it must make exactly the row the exact path makes.
    #[test]
    fn fast_and_exact_paths_agree_on_every_operation_kind_of_the_generated_estate() {
        // The benchmark corpus: the generator's ordinary Vault estate, whose mix of reads,
        // writes, patches, deletes, lists, logins, policy changes and denials is what a
        // backfill meets. Every entry the fast path takes must give the exact path's row.
        let dir = tempfile::tempdir().unwrap();
        let generated = crate::generate::generate(&crate::generate::GenerateOptions {
            source: crate::event::SourceKind::Vault,
            events: 40_000,
            seed: 7,
            days: 3,
            principals: 120,
            start: crate::generate::parse_start("2026-03-02").unwrap(),
            out: dir.path().to_owned(),
        })
        .unwrap();
        let text = std::fs::read(&generated.log).unwrap();
        let meta = meta();
        let mut fast_kinds = std::collections::BTreeMap::<String, usize>::new();
        let mut declined = std::collections::BTreeMap::<String, usize>::new();
        // One event every fast row is built into in turn, as a parsing thread does.
        let mut reused = Event::new(crate::event::SourceKind::K8s, "", String::new(), 0);
        for keep_raw in [false, true] {
            let opts = ParseOptions {
                keep_raw,
                ..ParseOptions::default()
            };
            for rec in crate::ingest::splitter::Splitter::new(&text[..], 1 << 20) {
                let rec = rec.unwrap();
                let value: Value = serde_json::from_slice(&rec.bytes).unwrap();
                let is_request = value["type"] == "request";
                let exact = from_value(&mut value.clone(), &opts, &meta, is_request).unwrap();
                assert_eq!(exact.raw_event.is_some(), keep_raw);
                let mut kind = format!("{}:{}", exact.operation, exact.action.as_str());
                if exact.outcome != Outcome::Success && exact.outcome != Outcome::Unknown {
                    kind = format!("{kind}:{}", exact.outcome.as_str());
                }
                let mut exact = exact;
                match from_text(&rec.bytes, &opts, &meta, is_request) {
                    Some(mut fast) => {
                        from_text_into(&mut reused, &rec.bytes, &opts, &meta, is_request).unwrap();
                        assert_eq!(reused, fast, "built over the rows before it");
                        // The fast path keeps the text as logged, the exact path writes the
                        // redacted value back out (keys sorted): the same JSON.
                        let raw = |e: &mut Event| {
                            e.raw_event
                                .take()
                                .map(|r| serde_json::from_str::<Value>(&r).unwrap())
                        };
                        assert_eq!(raw(&mut fast), raw(&mut exact));
                        assert_eq!(fast, exact, "{}", String::from_utf8_lossy(&rec.bytes));
                        *fast_kinds.entry(kind).or_default() += 1;
                    }
                    None => *declined.entry(kind).or_default() += 1,
                }
            }
        }
        let kinds: Vec<&str> = fast_kinds.keys().map(String::as_str).collect();
        for wanted in [
            "read:read",
            "update:write",
            "patch:write",
            "delete:delete",
            "list:list",
            "update:login",
            "read:read:denied",
        ] {
            assert!(
                kinds.contains(&wanted),
                "{wanted} not on the fast path: {fast_kinds:?}"
            );
        }
        // Only entries with a value Vault did not HMAC go the exact path (the generator logs
        // a policy's name in clear when it writes one).
        let all_declined: usize = declined.values().sum();
        let all_fast: usize = fast_kinds.values().sum();
        assert!(
            all_declined * 100 < all_fast,
            "declined {declined:?} of {all_fast}"
        );
    }

    #[test]
    fn fast_and_exact_paths_make_the_same_rows() {
        let opts = ParseOptions {
            keep_raw: false,
            ..ParseOptions::default()
        };
        let meta = meta();
        let mut compared = 0;
        for file in [
            "sample-data/vault/audit.log",
            "tests/fixtures/vault/golden.log",
        ] {
            let text = std::fs::read(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
            for rec in crate::ingest::splitter::Splitter::new(&text[..], 1 << 20) {
                let rec = rec.unwrap();
                let Ok(mut value) = serde_json::from_slice::<Value>(&rec.bytes) else {
                    continue;
                };
                // The entry as logged, and with the request headers Vault logs when told to.
                let mut variants = vec![(rec.bytes.to_vec(), false)];
                let base_fast = from_text(&rec.bytes, &opts, &meta, false).is_some();
                if value.get("request").is_some_and(Value::is_object) {
                    for (headers, fast_too) in [
                        (
                            serde_json::json!({"user-agent": ["vault-cli/1.15.0"]}),
                            true,
                        ),
                        (
                            serde_json::json!({"user-agent": "curl/8.5.0", "x-forwarded-for": ["10.1.1.1"]}),
                            true,
                        ),
                        (serde_json::json!({"user-agent": []}), true),
                        (
                            serde_json::json!({"authorization": ["hmac-sha256:aa"], "user-agent": ["a\"b"]}),
                            true,
                        ),
                        (serde_json::json!({"user-agent": 7}), false),
                        (serde_json::json!({"authorization": ["Bearer live"]}), false),
                        (serde_json::json!({"X-Vault-Token": "hvs.live"}), false),
                    ] {
                        let mut v = value.clone();
                        v["request"]["headers"] = headers;
                        variants.push((serde_json::to_vec(&v).unwrap(), fast_too));
                    }
                }
                for (bytes, fast_too) in &variants {
                    let value: Value = serde_json::from_slice(bytes).unwrap();
                    for is_request in [false, true] {
                        let exact = from_value(&mut value.clone(), &opts, &meta, is_request);
                        match from_text(bytes, &opts, &meta, is_request) {
                            Some(fast) => {
                                assert_eq!(
                                    Some(&fast),
                                    exact.as_ref().ok(),
                                    "{}",
                                    String::from_utf8_lossy(bytes)
                                );
                                compared += 1;
                            }
                            None => assert!(
                                !fast_too || !base_fast || exact.is_err(),
                                "the fast path declined {}",
                                String::from_utf8_lossy(bytes)
                            ),
                        }
                    }
                }
                // A clear secret value must send the entry to the exact path.
                if let Some(req) = value.get_mut("request") {
                    req["data"] = serde_json::json!({"password": "clear"});
                    let changed = serde_json::to_vec(&value).unwrap();
                    assert!(from_text(&changed, &opts, &meta, false).is_none());
                }
            }
        }
        assert!(compared > 1500, "{compared}");
    }
}
