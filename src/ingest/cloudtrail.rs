//! AWS CloudTrail records: Secrets Manager, SSM Parameter Store and KMS in detail, every other
//! service generically (nothing a trail delivers is dropped).
//!
//! Envelopes: elements of `{"Records":[...]}` files (gzip or not), EventBridge events (record in
//! `detail`), `LookupEvents` output (record as a JSON string in `CloudTrailEvent`) and JSON lines.
//! Batch calls (`BatchGetSecretValue`, `GetParameters`, `DeleteParameters`) become one row per
//! target with `#i` appended to the uid.

use serde_json::Value;

use super::fields::{
    at, optional_str, required_str, required_time, split_address, str_at, string_at,
};
use super::redact::redact_secret_keys;
use super::source::{ParseOptions, Parsed, RecordMeta, Reject, Source};
use super::splitter::Container;
use crate::event::{Action, ActorType, Event, Outcome, ResourceType, SourceKind};

/// A CloudTrail record names its service and call.
pub fn recognizes(v: &Value) -> bool {
    let record = unwrap_envelope(v).map(|(r, _)| r);
    match record {
        Some(Envelope::Borrowed(r)) => {
            r.get("eventSource").is_some() && r.get("eventName").is_some()
        }
        Some(Envelope::Owned(r)) => r.get("eventSource").is_some() && r.get("eventName").is_some(),
        None => false,
    }
}

/// CloudTrail digest files sit beside log files in the bucket; they hold hashes, not events.
pub fn is_digest(v: &Value) -> bool {
    v.get("digestStartTime").is_some() && v.get("logFiles").is_some()
}

enum Envelope<'a> {
    Borrowed(&'a Value),
    Owned(Value),
}

/// The CloudTrail record inside an envelope, and the envelope's name.
fn unwrap_envelope(v: &Value) -> Option<(Envelope<'_>, &'static str)> {
    if let Some(detail) = v.get("detail").filter(|d| d.is_object()) {
        if v.get("detail-type").is_some() {
            return Some((Envelope::Borrowed(detail), "cloudtrail_eventbridge"));
        }
    }
    if let Some(text) = v.get("CloudTrailEvent").and_then(Value::as_str) {
        return serde_json::from_str(text)
            .ok()
            .map(|r| (Envelope::Owned(r), "cloudtrail_lookup"));
    }
    Some((Envelope::Borrowed(v), "cloudtrail_json"))
}

pub struct CloudTrailSource {
    opts: ParseOptions,
}

impl CloudTrailSource {
    pub fn new(opts: ParseOptions) -> Self {
        CloudTrailSource { opts }
    }
}

impl Source for CloudTrailSource {
    fn kind(&self) -> SourceKind {
        SourceKind::CloudTrail
    }

    fn parse(&mut self, record: Value, meta: &RecordMeta) -> Result<Parsed, Reject> {
        if !record.is_object() {
            return Err(Reject::new(
                "not_an_object",
                "a CloudTrail record is a JSON object",
            ));
        }
        let (mut record, format) = match unwrap_envelope(&record) {
            Some((Envelope::Owned(r), f)) => (r, f),
            Some((Envelope::Borrowed(_), "cloudtrail_eventbridge")) => {
                let mut record = record;
                (record["detail"].take(), "cloudtrail_eventbridge")
            }
            _ => (record, "cloudtrail_json"),
        };
        let format = match (format, meta.container) {
            ("cloudtrail_json", Container::Wrapper(_)) => "cloudtrail_records",
            (f, _) => f,
        };
        Ok(Parsed::rows(normalize(
            &mut record,
            format,
            &self.opts,
            meta,
        )?))
    }
}

/// One target of a request: what a row is about.
#[derive(Debug, Clone, Default, PartialEq)]
struct Target {
    resource_type: Option<ResourceType>,
    id: Option<String>,
    name: Option<String>,
    version: Option<String>,
}

fn normalize(
    record: &mut Value,
    format: &'static str,
    opts: &ParseOptions,
    meta: &RecordMeta,
) -> Result<Vec<Event>, Reject> {
    if !record.is_object() {
        return Err(Reject::new(
            "not_an_object",
            "the CloudTrail record is not a JSON object",
        ));
    }
    let mut warnings = Vec::new();
    let mut removed = Vec::new();
    redact_secret_keys(record, "", &mut removed);
    for path in removed {
        warnings.push(format!("secret_redacted:{path}"));
    }
    let v: &Value = record;
    let time = required_time(v, "eventTime")?;
    if time.assumed_utc {
        warnings.push("time_without_zone_read_as_utc".into());
    }
    let event_id = required_str(v, "eventID")?;
    let event_source = required_str(v, "eventSource")?;
    let event_name = required_str(v, "eventName")?;
    let account = match optional_str(v, "recipientAccountId")? {
        Some(a) => a.to_owned(),
        None => {
            let a = str_at(v, "userIdentity.accountId")
                .ok_or_else(|| Reject::missing("recipientAccountId"))?;
            warnings.push("account_from_user_identity".into());
            a.to_owned()
        }
    };
    let region = optional_str(v, "awsRegion")?.map(str::to_owned);
    let service = event_source.trim_end_matches(".amazonaws.com").to_owned();

    let mut base = Event::new(
        SourceKind::CloudTrail,
        format,
        format!("cloudtrail:{account}:{event_id}"),
        time.nanos,
    );
    base.parse_warnings = warnings;
    base.source_event_id = Some(event_id.to_owned());
    base.request_id = string_at(v, "requestID");
    base.tenant = Some(account.clone());
    base.region = region.clone();
    base.service = service.clone();
    base.operation = event_name.to_owned();
    base.raw_location = meta.location();

    let error_code =
        optional_str(v, "errorCode")?.or_else(|| str_at(v, "responseElements.errorCode"));
    base.outcome = outcome(error_code);
    base.status_code = error_code.map(str::to_owned);
    base.error_message =
        string_at(v, "errorMessage").or_else(|| string_at(v, "responseElements.errorMessage"));
    base.http_status = match base.outcome {
        Outcome::Denied => Some(403),
        Outcome::NotFound => Some(404),
        _ => None,
    };
    set_actor(&mut base, v, &account);
    if let Some(addr) = str_at(v, "sourceIPAddress") {
        (base.src_ip, base.src_host) = split_address(addr);
    }
    base.user_agent = string_at(v, "userAgent");
    for (key, path) in [
        ("event_type", "eventType"),
        ("event_version", "eventVersion"),
        ("vpc_endpoint_id", "vpcEndpointId"),
        ("shared_event_id", "sharedEventID"),
    ] {
        if let Some(val) = str_at(v, path) {
            base.attributes.insert(key.into(), val.into());
        }
    }
    if let Some(ro) = at(v, "readOnly").and_then(super::fields::scalar_text) {
        base.attributes.insert("read_only".into(), ro);
    }

    let ctx = Context {
        region: region.as_deref().unwrap_or(""),
        account: &account,
    };
    let (action, secret_read, targets) = match service.as_str() {
        "secretsmanager" => secrets_manager(v, event_name, &ctx, &mut base),
        "ssm" => parameter_store(v, event_name, &ctx, &mut base),
        "kms" => kms(v, event_name, &mut base),
        _ => generic(v, event_name),
    };
    base.action = action;
    base.is_secret_read = secret_read;
    if opts.keep_raw {
        base.raw_event = Some(v.to_string());
    }
    let count = targets.len();
    if count == 0 {
        base.target_count = 0;
        return Ok(vec![base]);
    }
    let mut rows = Vec::with_capacity(count);
    for (i, t) in targets.into_iter().enumerate() {
        let mut e = base.clone();
        if count > 1 {
            e.event_uid = format!("{}#{i}", base.event_uid);
        }
        e.target_index = i as i32;
        e.target_count = count as i32;
        e.resource_type = t.resource_type.unwrap_or(ResourceType::None);
        e.resource_id = t.id;
        e.resource_name = t.name;
        e.resource_version = t.version;
        rows.push(e);
    }
    Ok(rows)
}

fn outcome(error_code: Option<&str>) -> Outcome {
    let Some(code) = error_code else {
        return Outcome::Success;
    };
    let lower = code.to_ascii_lowercase();
    if lower.contains("accessdenied")
        || lower.contains("unauthorized")
        || lower.contains("notauthorized")
    {
        Outcome::Denied
    } else if lower.contains("notfound") {
        Outcome::NotFound
    } else {
        Outcome::Error
    }
}

fn set_actor(e: &mut Event, v: &Value, account: &str) {
    let id_type = str_at(v, "userIdentity.type").unwrap_or("Unknown");
    let arn = str_at(v, "userIdentity.arn");
    let acct = str_at(v, "userIdentity.accountId").unwrap_or(account);
    e.via_service = string_at(v, "userIdentity.invokedBy");
    e.credential_id = string_at(v, "userIdentity.accessKeyId");
    e.mfa =
        at(v, "userIdentity.sessionContext.attributes.mfaAuthenticated").and_then(|m| match m {
            Value::Bool(b) => Some(*b),
            Value::String(s) => Some(s.eq_ignore_ascii_case("true")),
            _ => None,
        });
    e.actor_origin_id = string_at(v, "userIdentity.sourceIdentity")
        .or_else(|| string_at(v, "userIdentity.onBehalfOf.userId"));
    match id_type {
        "AssumedRole" => {
            let issuer = str_at(v, "userIdentity.sessionContext.sessionIssuer.arn");
            let (role_arn, session) = match arn.and_then(parse_assumed_role) {
                Some((role, session)) => (issuer.map(str::to_owned).unwrap_or(role), Some(session)),
                None => (issuer.or(arn).unwrap_or("").to_owned(), None),
            };
            // One principal, one id: the issuer ARN carries the role path, the session ARN not.
            let role_arn = without_role_path(&role_arn);
            let role_name = role_arn.rsplit('/').next().unwrap_or("").to_owned();
            let human = role_name.starts_with("AWSReservedSSO_")
                || session.as_deref().is_some_and(|s| s.contains('@'));
            e.actor_type = if human {
                ActorType::Human
            } else {
                ActorType::Workload
            };
            e.actor_name = session;
            e.actor_role = Some(role_arn.clone()).filter(|r| !r.is_empty());
            e.actor_id = Some(role_arn).filter(|r| !r.is_empty());
        }
        "Root" => {
            e.actor_type = ActorType::Root;
            e.actor_id = Some(
                arn.map(str::to_owned)
                    .unwrap_or_else(|| format!("arn:aws:iam::{acct}:root")),
            );
            e.actor_name = string_at(v, "userIdentity.userName").or(Some("root".into()));
        }
        "IAMUser" | "FederatedUser" | "SAMLUser" | "IdentityCenterUser" => {
            e.actor_type = ActorType::Human;
            e.actor_id = arn
                .map(str::to_owned)
                .or_else(|| string_at(v, "userIdentity.onBehalfOf.userId"))
                .or_else(|| string_at(v, "userIdentity.principalId"));
            e.actor_name = string_at(v, "userIdentity.userName")
                .or_else(|| arn.and_then(|a| a.rsplit('/').next()).map(str::to_owned));
        }
        "WebIdentityUser" => {
            e.actor_type = ActorType::Workload;
            e.actor_id = string_at(v, "userIdentity.userName")
                .or_else(|| string_at(v, "userIdentity.principalId"));
            e.actor_name = e.actor_id.clone();
        }
        "AWSService" => {
            e.actor_type = ActorType::Service;
            e.actor_id = e
                .via_service
                .clone()
                .or_else(|| string_at(v, "userIdentity.principalId"));
            e.actor_name = e.actor_id.clone();
        }
        _ => {
            e.actor_type = ActorType::Unknown;
            e.actor_id = arn
                .map(str::to_owned)
                .or_else(|| string_at(v, "userIdentity.principalId"));
            e.actor_name = string_at(v, "userIdentity.userName");
        }
    }
}

/// `arn:aws:iam::ACCT:role/path/NAME` → `arn:aws:iam::ACCT:role/NAME`: `actor_id` names the role, not its path.
fn without_role_path(arn: &str) -> String {
    match arn.split_once(":role/") {
        Some((head, rest)) => format!("{head}:role/{}", rest.rsplit('/').next().unwrap_or(rest)),
        None => arn.to_owned(),
    }
}

/// `arn:aws:sts::ACCT:assumed-role/ROLE/SESSION` → (`arn:aws:iam::ACCT:role/ROLE`, `SESSION`).
fn parse_assumed_role(arn: &str) -> Option<(String, String)> {
    let (head, rest) = arn.split_once(":assumed-role/")?;
    let (role, session) = rest.rsplit_once('/')?;
    let account = head
        .rsplit(':')
        .nth(1)
        .filter(|a| !a.is_empty())
        .or_else(|| head.rsplit(':').next())?;
    let partition = head.split(':').nth(1).unwrap_or("aws");
    Some((
        format!("arn:{partition}:iam::{account}:role/{role}"),
        session.to_owned(),
    ))
}

struct Context<'a> {
    region: &'a str,
    account: &'a str,
}

/// A secret named by name, partial ARN or full ARN → (canonical ARN without the random suffix,
/// name). The 6-character suffix is removed only from a full ARN, where AWS always adds it.
fn secret_identity(id: &str, ctx: &Context) -> (String, String) {
    if let Some((head, name)) = id.split_once(":secret:") {
        let name = match name.rsplit_once('-') {
            Some((base, suffix))
                if suffix.len() == 6 && suffix.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                base
            }
            _ => name,
        };
        return (format!("{head}:secret:{name}"), name.to_owned());
    }
    (
        format!(
            "arn:aws:secretsmanager:{}:{}:secret:{id}",
            ctx.region, ctx.account
        ),
        id.to_owned(),
    )
}

/// The resource named in an AccessDenied message: `... on resource: NAME because ...`.
fn target_from_error(v: &Value) -> Option<String> {
    let msg = str_at(v, "errorMessage")?;
    let (_, rest) = msg.split_once("on resource: ")?;
    let end = rest.find(" because").unwrap_or(rest.len());
    Some(rest[..end].trim().trim_end_matches('.').to_owned()).filter(|s| !s.is_empty())
}

fn secrets_manager(
    v: &Value,
    name: &str,
    ctx: &Context,
    e: &mut Event,
) -> (Action, bool, Vec<Target>) {
    let action = match name {
        "GetSecretValue"
        | "BatchGetSecretValue"
        | "DescribeSecret"
        | "GetResourcePolicy"
        | "GetRandomPassword" => Action::Read,
        "ListSecrets" | "ListSecretVersionIds" => Action::List,
        "RotateSecret" | "CancelRotateSecret" | "RotationStarted" | "RotationSucceeded"
        | "RotationFailed" | "RotationAbandoned" => Action::Rotate,
        "DeleteSecret" | "StartSecretVersionDelete" | "EndSecretVersionDelete" => Action::Delete,
        "PutResourcePolicy" | "DeleteResourcePolicy" | "ValidateResourcePolicy" => Action::Policy,
        n if n.starts_with("Put")
            || n.starts_with("Update")
            || n.starts_with("Create")
            || n.starts_with("Restore")
            || n.starts_with("Tag")
            || n.starts_with("Untag")
            || n.starts_with("Cancel")
            || n.starts_with("Replicate")
            || n.starts_with("Remove") =>
        {
            Action::Write
        }
        _ => Action::Other,
    };
    let secret_read = matches!(name, "GetSecretValue" | "BatchGetSecretValue");
    let version = string_at(v, "requestParameters.versionId")
        .or_else(|| string_at(v, "requestParameters.versionStage"));
    let make = |id: &str| {
        let (arn, sname) = secret_identity(id, ctx);
        Target {
            resource_type: Some(ResourceType::AwsSecret),
            id: Some(arn),
            name: Some(sname),
            version: version.clone(),
        }
    };
    if let Some(list) = at(v, "requestParameters.secretIdList").and_then(Value::as_array) {
        return (
            action,
            secret_read,
            list.iter().filter_map(Value::as_str).map(make).collect(),
        );
    }
    let id = str_at(v, "requestParameters.secretId")
        .or_else(|| str_at(v, "requestParameters.name"))
        .or_else(|| str_at(v, "additionalEventData.SecretId"))
        .or_else(|| str_at(v, "serviceEventDetails.secretId"))
        .map(str::to_owned)
        .or_else(|| first_resource_arn(v, "secretsmanager"));
    match id {
        Some(id) => (action, secret_read, vec![make(&id)]),
        None if at(v, "requestParameters.filters").is_some() => {
            e.parse_warnings
                .push("batch_by_filter_targets_unknown".into());
            (action, secret_read, Vec::new())
        }
        None => match target_from_error(v) {
            Some(id) => {
                e.parse_warnings.push("target_from_error_message".into());
                (action, secret_read, vec![make(&id)])
            }
            None if matches!(action, Action::List) => (action, secret_read, Vec::new()),
            None => {
                e.parse_warnings.push("target_unknown".into());
                (action, secret_read, vec![Target::default()])
            }
        },
    }
}

fn first_resource_arn(v: &Value, service: &str) -> Option<String> {
    let needle = format!(":{service}:");
    at(v, "resources")?.as_array()?.iter().find_map(|r| {
        let arn = r
            .get("ARN")
            .or_else(|| r.get("arn"))
            .or_else(|| r.get("aRN"))?
            .as_str()?;
        arn.contains(&needle).then(|| arn.to_owned())
    })
}

/// A parameter name (`/prod/db`, `prod-db`) or ARN → (ARN, name).
fn parameter_identity(name: &str, ctx: &Context) -> (String, String) {
    if let Some((_, rest)) = name.split_once(":parameter") {
        return (name.to_owned(), rest.to_owned());
    }
    let path = if name.starts_with('/') {
        name.to_owned()
    } else {
        format!("/{name}")
    };
    (
        format!("arn:aws:ssm:{}:{}:parameter{path}", ctx.region, ctx.account),
        name.to_owned(),
    )
}

fn parameter_store(
    v: &Value,
    name: &str,
    ctx: &Context,
    e: &mut Event,
) -> (Action, bool, Vec<Target>) {
    let action = match name {
        "GetParameter" | "GetParameters" | "GetParametersByPath" | "GetParameterHistory" => {
            Action::Read
        }
        "DescribeParameters" => Action::List,
        "DeleteParameter" | "DeleteParameters" => Action::Delete,
        "PutParameter"
        | "LabelParameterVersion"
        | "UnlabelParameterVersion"
        | "AddTagsToResource" => Action::Write,
        _ => Action::Other,
    };
    let decrypt = at(v, "requestParameters.withDecryption")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if decrypt {
        e.attributes.insert("with_decryption".into(), "true".into());
    }
    let secret_read = action == Action::Read && decrypt;
    let make = |n: &str| {
        let (arn, pname) = parameter_identity(n, ctx);
        Target {
            resource_type: Some(ResourceType::SsmParameter),
            id: Some(arn),
            name: Some(pname),
            version: None,
        }
    };
    if let Some(names) = at(v, "requestParameters.names").and_then(Value::as_array) {
        return (
            action,
            secret_read,
            names.iter().filter_map(Value::as_str).map(make).collect(),
        );
    }
    let single = str_at(v, "requestParameters.name")
        .or_else(|| str_at(v, "requestParameters.path"))
        .map(str::to_owned);
    match single {
        Some(n) => (action, secret_read, vec![make(&n)]),
        None if action == Action::List => (action, secret_read, Vec::new()),
        None => match target_from_error(v) {
            Some(n) => {
                e.parse_warnings.push("target_from_error_message".into());
                // Denied with null requestParameters: the decryption flag is unknown, and a
                // denied Get* is counted as an attempt to read the secret.
                let read = secret_read || (action == Action::Read && e.outcome == Outcome::Denied);
                (action, read, vec![make(&n)])
            }
            None => {
                e.parse_warnings.push("target_unknown".into());
                (action, secret_read, vec![Target::default()])
            }
        },
    }
}

fn kms(v: &Value, name: &str, e: &mut Event) -> (Action, bool, Vec<Target>) {
    let action = match name {
        "Decrypt" => Action::Decrypt,
        "ReEncrypt"
        | "Encrypt"
        | "GenerateDataKey"
        | "GenerateDataKeyWithoutPlaintext"
        | "GenerateDataKeyPair"
        | "Sign"
        | "Verify"
        | "GenerateMac"
        | "VerifyMac" => Action::Other,
        "ListKeys" | "ListAliases" | "ListGrants" => Action::List,
        "ScheduleKeyDeletion" | "DisableKey" | "DeleteAlias" | "RetireGrant" | "RevokeGrant" => {
            Action::Delete
        }
        "PutKeyPolicy" | "CreateGrant" => Action::Policy,
        "EnableKeyRotation" | "DisableKeyRotation" | "RotateKeyOnDemand" => Action::Rotate,
        n if n.starts_with("Describe") || n.starts_with("Get") => Action::Read,
        _ => Action::Write,
    };
    if let Some(ctx) = at(v, "requestParameters.encryptionContext").and_then(Value::as_object) {
        for (k, val) in ctx {
            if let Some(s) = super::fields::scalar_text(val) {
                e.attributes.insert(format!("encryption_context.{k}"), s);
            }
        }
    }
    // A Decrypt made by Secrets Manager or Parameter Store for a caller repeats a read the
    // GetSecretValue / GetParameter row already counts.
    let secret_read = action == Action::Decrypt && e.via_service.is_none();
    let key = first_resource_arn(v, "kms").or_else(|| string_at(v, "requestParameters.keyId"));
    let target = Target {
        resource_type: key.as_ref().map(|_| ResourceType::KmsKey),
        name: key
            .as_ref()
            .map(|k| k.rsplit('/').next().unwrap_or(k).to_owned()),
        id: key,
        version: None,
    };
    (action, secret_read, vec![target])
}

fn generic(v: &Value, name: &str) -> (Action, bool, Vec<Target>) {
    let action = match name {
        n if n.starts_with("AssumeRole") || n == "ConsoleLogin" => Action::Login,
        "GetSessionToken" | "GetFederationToken" => Action::Token,
        n if n.starts_with("List") => Action::List,
        n if n.starts_with("Get") || n.starts_with("Describe") => Action::Read,
        n if n.starts_with("Delete") => Action::Delete,
        n if n.contains("Policy") => Action::Policy,
        n if n.starts_with("Put") || n.starts_with("Create") || n.starts_with("Update") => {
            Action::Write
        }
        _ => Action::Other,
    };
    let arn = at(v, "resources")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .and_then(|r| r.get("ARN"))
        .and_then(Value::as_str);
    let target = Target {
        resource_type: None,
        id: arn.map(str::to_owned),
        name: arn.map(|a| a.rsplit(['/', ':']).next().unwrap_or(a).to_owned()),
        version: None,
    };
    (action, false, vec![target])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context<'static> {
        Context {
            region: "eu-west-1",
            account: "111122223333",
        }
    }

    #[test]
    fn secret_ids_normalize_to_one_identity() {
        let by_arn = secret_identity(
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/payments/db-a1B2c3",
            &ctx(),
        );
        let by_name = secret_identity("prod/payments/db", &ctx());
        assert_eq!(by_arn, by_name);
        assert_eq!(by_arn.1, "prod/payments/db");
    }

    #[test]
    fn assumed_role_arn_gives_the_role() {
        let (role, session) =
            parse_assumed_role("arn:aws:sts::111122223333:assumed-role/payments-api-task/s-1")
                .unwrap();
        assert_eq!(role, "arn:aws:iam::111122223333:role/payments-api-task");
        assert_eq!(session, "s-1");
    }

    #[test]
    fn role_paths_are_dropped_from_actor_ids() {
        assert_eq!(
            without_role_path(
                "arn:aws:iam::1:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0a"
            ),
            "arn:aws:iam::1:role/AWSReservedSSO_Admin_0a"
        );
        assert_eq!(
            without_role_path("arn:aws:iam::1:role/app"),
            "arn:aws:iam::1:role/app"
        );
    }

    #[test]
    fn error_codes_map_to_outcomes() {
        assert_eq!(outcome(None), Outcome::Success);
        assert_eq!(outcome(Some("AccessDenied")), Outcome::Denied);
        assert_eq!(outcome(Some("AccessDeniedException")), Outcome::Denied);
        assert_eq!(
            outcome(Some("ResourceNotFoundException")),
            Outcome::NotFound
        );
        assert_eq!(outcome(Some("ParameterNotFound")), Outcome::NotFound);
        assert_eq!(outcome(Some("ThrottlingException")), Outcome::Error);
    }
}
