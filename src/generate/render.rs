//! Writing generated calls in each source's own format, with the identities vigil's parsers
//! derive from them (so labels name the same `actor_id` and `resource_id` as the stored rows).

use std::io::{self, Write};

use super::population::{Call, CallKind, Kind, Population, Principal, Secret};
use super::rng::Rng;
use crate::event::SourceKind;
use crate::ingest::timestamp::format_nanos;

const ACCOUNT: &str = "111122223333";
const REGION: &str = "eu-west-1";

/// Input records one call becomes: Vault and Kubernetes log a request and a response stage.
pub fn records_per_call(source: SourceKind) -> u64 {
    match source {
        SourceKind::Vault | SourceKind::K8s => 2,
        _ => 1,
    }
}

fn stable_uuid(name: &str) -> String {
    // FNV-1a of the name seeds the generator: the same principal has the same id in every run.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Rng::new(hash).uuid()
}

/// (`actor_id`, `resource_id`) as vigil normalizes them for `source`.
pub fn identity(source: SourceKind, p: &Principal, s: &Secret) -> (String, String) {
    match source {
        SourceKind::Vault => (
            stable_uuid(&p.name),
            format!("vault:default/secret/{}", s.path()),
        ),
        SourceKind::CloudTrail => {
            let actor = match p.kind {
                Kind::Human => format!("arn:aws:iam::{ACCOUNT}:user/{}", p.name),
                Kind::Workload => format!("arn:aws:iam::{ACCOUNT}:role/{}", p.name),
            };
            (
                actor,
                format!(
                    "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{}",
                    s.path()
                ),
            )
        }
        SourceKind::Gcp => (
            gcp_principal(p),
            format!("projects/acme-{}/secrets/{}-{}", s.env(), s.team(), s.name),
        ),
        SourceKind::Azure => (
            stable_uuid(&p.name),
            format!(
                "https://kv-{}.vault.azure.net/secrets/{}-{}",
                s.env(),
                s.team(),
                s.name
            ),
        ),
        SourceKind::K8s => (
            k8s_user(p),
            format!("k8s:default/{}-{}/{}", s.team(), s.env(), s.name),
        ),
    }
}

fn gcp_principal(p: &Principal) -> String {
    match p.kind {
        Kind::Human => format!("{}@acme.example", p.name),
        Kind::Workload => format!("{}@acme-{}.iam.gserviceaccount.com", p.name, p.env()),
    }
}

fn k8s_user(p: &Principal) -> String {
    match p.kind {
        Kind::Human => format!("oidc:{}@acme.example", p.name),
        Kind::Workload => {
            let role = p.name.rsplit('-').next().unwrap_or("app");
            format!("system:serviceaccount:{}-{}:{role}", p.team(), p.env())
        }
    }
}

/// The caller's address: services in 10.x by team, people on the VPN.
fn address(p: &Principal, idx: usize) -> String {
    match p.kind {
        Kind::Workload => format!("10.{}.{}.{}", 20 + p.env, 10 + p.team, 10 + idx % 200),
        Kind::Human => format!("192.168.10.{}", 20 + idx % 200),
    }
}

pub struct Renderer {
    source: SourceKind,
    rng: Rng,
}

impl Renderer {
    pub fn new(source: SourceKind, seed: u64) -> Renderer {
        Renderer {
            source,
            rng: Rng::new(seed ^ 0x005e_ed0f_1065),
        }
    }

    /// Writes one call; returns the records written.
    pub fn write(
        &mut self,
        out: &mut impl Write,
        pop: &Population,
        call: &Call,
    ) -> io::Result<u64> {
        let p = &pop.principals[call.principal];
        let s = &pop.secrets[call.secret];
        match self.source {
            SourceKind::Vault => self.vault(out, p, s, call),
            SourceKind::CloudTrail => self.cloudtrail(out, p, s, call),
            SourceKind::Gcp => self.gcp(out, p, s, call),
            SourceKind::Azure => self.azure(out, p, s, call),
            SourceKind::K8s => self.k8s(out, p, s, call),
        }
    }

    fn vault(
        &mut self,
        out: &mut impl Write,
        p: &Principal,
        s: &Secret,
        call: &Call,
    ) -> io::Result<u64> {
        let id = self.rng.uuid();
        let entity = stable_uuid(&p.name);
        let token = format!("hmac-sha256:{}", self.rng.hex(64));
        let accessor = format!(
            "hmac-sha256:{}",
            &stable_uuid(&format!("acc-{}", p.name)).replace('-', "")[..32].repeat(2)
        );
        let (display, method_meta) = match p.kind {
            Kind::Human => (
                format!("oidc-{}", p.name),
                format!(
                    r#"{{"role":"engineer","username":"{}@acme.example"}}"#,
                    p.name
                ),
            ),
            Kind::Workload => (
                format!("kubernetes-{}", p.name),
                format!(
                    r#"{{"role":"{}","service_account_name":"{}","service_account_namespace":"{}-{}","service_account_uid":"{}"}}"#,
                    p.team(),
                    p.name,
                    p.team(),
                    p.env(),
                    stable_uuid(&p.name)
                ),
            ),
        };
        let policy = format!("{}-{}-read", p.team(), p.env());
        let (operation, path, mount_type) = match call.kind {
            CallKind::List => (
                "list",
                format!("secret/metadata/{}/{}/", s.env(), s.team()),
                "kv",
            ),
            CallKind::Write => ("update", format!("secret/data/{}", s.path()), "kv"),
            CallKind::Login if p.kind == Kind::Human => {
                ("update", "auth/oidc/oidc/callback".to_owned(), "oidc")
            }
            CallKind::Login => ("update", "auth/kubernetes/login".to_owned(), "kubernetes"),
            _ => ("read", format!("secret/data/{}", s.path()), "kv"),
        };
        let mount = if mount_type == "kv" {
            "secret/"
        } else if mount_type == "oidc" {
            "auth/oidc/"
        } else {
            "auth/kubernetes/"
        };
        let allowed = call.kind != CallKind::Denied;
        let ip = address(p, call.principal);
        let port = 30_000 + self.rng.below(30_000);
        let issue = format_nanos(call.time - 1_800_000_000_000);
        let auth = format!(
            r#"{{"client_token":"{token}","accessor":"{accessor}","display_name":"{display}","policies":["default","{policy}"],"token_policies":["default","{policy}"],"identity_policies":[],"metadata":{method_meta},"entity_id":"{entity}","token_type":"service","token_ttl":3600,"token_issue_time":"{issue}","policy_results":{{"allowed":{allowed},"granting_policies":[{{"name":"{policy}","namespace_id":"root","type":"acl"}}]}}}}"#
        );
        let request = format!(
            r#"{{"id":"{id}","client_id":"{entity}","operation":"{operation}","mount_point":"{mount}","mount_type":"{mount_type}","mount_accessor":"{mount_type}_1f0c2e7a","mount_running_version":"v0.20.0+builtin","mount_class":"secret","client_token":"{token}","client_token_accessor":"{accessor}","namespace":{{"id":"root"}},"path":"{path}","remote_address":"{ip}","remote_port":{port}}}"#
        );
        let t_req = format_nanos(call.time);
        let t_resp = format_nanos(call.time + 1_000_000 + self.rng.below(9_000_000) as i64);
        let version = 1 + (s.name.len() as u64 + call.secret as u64) % 9;
        let (req_error, resp_error, response) = match call.kind {
            CallKind::Denied => (
                r#","error":"permission denied""#.to_owned(),
                r#","error":"1 error occurred:\n\t* permission denied\n\n""#.to_owned(),
                format!(
                    r#"{{"mount_type":"kv","data":{{"error":"hmac-sha256:{}"}}}}"#,
                    self.rng.hex(64)
                ),
            ),
            CallKind::NotFound => (
                String::new(),
                String::new(),
                r#"{"mount_type":"kv"}"#.to_owned(),
            ),
            CallKind::List => (
                String::new(),
                String::new(),
                format!(
                    r#"{{"mount_type":"kv","data":{{"keys":["hmac-sha256:{}","hmac-sha256:{}"]}}}}"#,
                    self.rng.hex(64),
                    self.rng.hex(64)
                ),
            ),
            _ => (
                String::new(),
                String::new(),
                format!(
                    r#"{{"mount_type":"kv","mount_accessor":"kv_1f0c2e7a","mount_running_plugin_version":"v0.20.0+builtin","mount_class":"secret","data":{{"data":{{"password":"hmac-sha256:{h1}","username":"hmac-sha256:{h2}"}},"metadata":{{"created_time":"hmac-sha256:{h3}","custom_metadata":null,"deletion_time":"hmac-sha256:{h4}","destroyed":false,"version":{version}}}}}}}"#,
                    h1 = stable_hex(&s.path(), 1),
                    h2 = stable_hex(&s.path(), 2),
                    h3 = stable_hex(&s.path(), 3),
                    h4 = stable_hex(&s.path(), 4),
                ),
            ),
        };
        writeln!(
            out,
            r#"{{"time":"{t_req}","type":"request","auth":{auth},"request":{request}{req_error}}}"#
        )?;
        writeln!(
            out,
            r#"{{"time":"{t_resp}","type":"response","auth":{auth},"request":{request},"response":{response}{resp_error}}}"#
        )?;
        Ok(2)
    }

    fn cloudtrail(
        &mut self,
        out: &mut impl Write,
        p: &Principal,
        s: &Secret,
        call: &Call,
    ) -> io::Result<u64> {
        let (actor, _) = identity(SourceKind::CloudTrail, p, s);
        let user_identity = match p.kind {
            Kind::Human => format!(
                r#"{{"type":"IAMUser","principalId":"AIDA{}","arn":"{actor}","accountId":"{ACCOUNT}","accessKeyId":"AKIA{}","userName":"{}"}}"#,
                self.rng.hex(16).to_uppercase(),
                self.rng.hex(16).to_uppercase(),
                p.name
            ),
            Kind::Workload => {
                let session = self.rng.hex(32);
                format!(
                    r#"{{"type":"AssumedRole","principalId":"AROA{}:{session}","arn":"arn:aws:sts::{ACCOUNT}:assumed-role/{}/{session}","accountId":"{ACCOUNT}","accessKeyId":"ASIA{}","sessionContext":{{"sessionIssuer":{{"type":"Role","principalId":"AROA{}","arn":"{actor}","accountId":"{ACCOUNT}","userName":"{}"}},"attributes":{{"creationDate":"{}","mfaAuthenticated":"false"}}}}}}"#,
                    stable_hex(&p.name, 0)[..16].to_uppercase(),
                    p.name,
                    self.rng.hex(16).to_uppercase(),
                    stable_hex(&p.name, 0)[..16].to_uppercase(),
                    p.name,
                    format_seconds(call.time - 600_000_000_000)
                )
            }
        };
        let arn = format!(
            "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{}-{}",
            s.path(),
            &stable_hex(&s.path(), 9)[..6]
        );
        let (name, params, error, read_only) = match call.kind {
            CallKind::List => ("ListSecrets", r#"{"maxResults":100}"#.to_owned(), String::new(), true),
            CallKind::Write => ("PutSecretValue", format!(r#"{{"secretId":"{arn}","clientRequestToken":"{}","secretString":"HIDDEN_DUE_TO_SECURITY_REASONS"}}"#, self.rng.uuid()), String::new(), false),
            CallKind::Login => ("DescribeSecret", format!(r#"{{"secretId":"{}"}}"#, s.path()), String::new(), true),
            CallKind::Denied => ("GetSecretValue", "null".to_owned(), format!(r#","errorCode":"AccessDenied","errorMessage":"User: {actor} is not authorized to perform: secretsmanager:GetSecretValue on resource: {} because no identity-based policy allows the secretsmanager:GetSecretValue action""#, s.path()), true),
            CallKind::NotFound => ("GetSecretValue", format!(r#"{{"secretId":"{}"}}"#, s.path()), r#","errorCode":"ResourceNotFoundException","errorMessage":"Secrets Manager can't find the specified secret.""#.to_owned(), true),
            CallKind::Read => ("GetSecretValue", format!(r#"{{"secretId":"{arn}"}}"#), String::new(), true),
        };
        let ip = address(p, call.principal);
        writeln!(
            out,
            r#"{{"eventVersion":"1.10","userIdentity":{user_identity},"eventTime":"{}","eventSource":"secretsmanager.amazonaws.com","eventName":"{name}","awsRegion":"{REGION}","sourceIPAddress":"{ip}","userAgent":"aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux api/secretsmanager#1.32.0","requestParameters":{params},"responseElements":null{error},"requestID":"{}","eventID":"{}","readOnly":{read_only},"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"{ACCOUNT}","eventCategory":"Management","tlsDetails":{{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"secretsmanager.{REGION}.amazonaws.com"}}}}"#,
            format_seconds(call.time),
            self.rng.uuid(),
            self.rng.uuid()
        )?;
        Ok(1)
    }

    fn gcp(
        &mut self,
        out: &mut impl Write,
        p: &Principal,
        s: &Secret,
        call: &Call,
    ) -> io::Result<u64> {
        let (who, _) = identity(SourceKind::Gcp, p, s);
        let secret = format!("projects/acme-{}/secrets/{}-{}", s.env(), s.team(), s.name);
        let (method, resource, status, granted, log) = match call.kind {
            CallKind::List => (
                "ListSecrets",
                format!("projects/acme-{}", s.env()),
                "{}".to_owned(),
                true,
                "data_access",
            ),
            CallKind::Write => (
                "AddSecretVersion",
                secret.clone(),
                "{}".to_owned(),
                true,
                "activity",
            ),
            CallKind::Login => (
                "GetSecret",
                secret.clone(),
                "{}".to_owned(),
                true,
                "data_access",
            ),
            CallKind::Denied => (
                "AccessSecretVersion",
                format!("{secret}/versions/latest"),
                format!(
                    r#"{{"code":7,"message":"Permission 'secretmanager.versions.access' denied on resource '{secret}/versions/latest' (or it may not exist)."}}"#
                ),
                false,
                "data_access",
            ),
            CallKind::NotFound => (
                "AccessSecretVersion",
                format!("{secret}/versions/9"),
                r#"{"code":5,"message":"Secret Version not found"}"#.to_owned(),
                true,
                "data_access",
            ),
            CallKind::Read => (
                "AccessSecretVersion",
                format!("{secret}/versions/latest"),
                "{}".to_owned(),
                true,
                "data_access",
            ),
        };
        let ts = format_nanos(call.time);
        let ip = address(p, call.principal);
        writeln!(
            out,
            r#"{{"insertId":"{}","logName":"projects/acme-{env}/logs/cloudaudit.googleapis.com%2F{log}","protoPayload":{{"@type":"type.googleapis.com/google.cloud.audit.AuditLog","status":{status},"authenticationInfo":{{"principalEmail":"{who}"}},"requestMetadata":{{"callerIp":"{ip}","callerSuppliedUserAgent":"grpc-go/1.64.0,gzip(gfe)","requestAttributes":{{"time":"{ts}","auth":{{}}}},"destinationAttributes":{{}}}},"serviceName":"secretmanager.googleapis.com","methodName":"google.cloud.secretmanager.v1.SecretManagerService.{method}","authorizationInfo":[{{"permission":"secretmanager.versions.access","granted":{granted},"resource":"{resource}","resourceAttributes":{{"service":"secretmanager.googleapis.com","name":"{resource}"}},"permissionType":"DATA_READ"}}],"resourceName":"{resource}"}},"resource":{{"type":"audited_resource","labels":{{"service":"secretmanager.googleapis.com","method":"google.cloud.secretmanager.v1.SecretManagerService.{method}","project_id":"acme-{env}"}}}},"timestamp":"{ts}","severity":"{sev}","receiveTimestamp":"{recv}"}}"#,
            self.rng.hex(12),
            env = s.env(),
            sev = if granted && call.kind != CallKind::NotFound {
                "INFO"
            } else {
                "ERROR"
            },
            recv = format_nanos(call.time + 600_000_000),
        )?;
        Ok(1)
    }

    fn azure(
        &mut self,
        out: &mut impl Write,
        p: &Principal,
        s: &Secret,
        call: &Call,
    ) -> io::Result<u64> {
        let oid = stable_uuid(&p.name);
        let claim = match p.kind {
            Kind::Human => format!(
                r#"{{"oid":"{oid}","upn":"{}@acme.example","idtyp":"user","appid":"04b07795-8ddb-461a-bbee-02f9e1bf7b46"}}"#,
                p.name
            ),
            Kind::Workload => format!(
                r#"{{"oid":"{oid}","appid":"{}","idtyp":"app","xms_mirid":"/subscriptions/0b1c2d3e-0000-4000-8000-00000000ab12/resourcegroups/rg-{env}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}-mi"}}"#,
                stable_uuid(&format!("app-{}", p.name)),
                p.name,
                env = p.env()
            ),
        };
        let vault = format!("kv-{}", s.env());
        let object = format!(
            "https://{vault}.vault.azure.net/secrets/{}-{}",
            s.team(),
            s.name
        );
        let (op, code, sig, id) = match call.kind {
            CallKind::List => (
                "SecretList",
                200,
                "OK",
                format!("https://{vault}.vault.azure.net/secrets"),
            ),
            CallKind::Write => (
                "SecretSet",
                200,
                "OK",
                format!("{object}/{}", self.rng.hex(32)),
            ),
            CallKind::Login => ("SecretGetVersions", 200, "OK", object.clone()),
            CallKind::Denied => ("SecretGet", 403, "Forbidden", object.clone()),
            CallKind::NotFound => ("SecretGet", 404, "NotFound", object.clone()),
            CallKind::Read => (
                "SecretGet",
                200,
                "OK",
                format!("{object}/{}", stable_hex(&s.path(), 5)[..32].to_owned()),
            ),
        };
        // Azure writes seven fraction digits (100 ns ticks).
        let t = format!(
            "{}.{:07}Z",
            chrono::DateTime::from_timestamp_nanos(call.time).format("%Y-%m-%dT%H:%M:%S"),
            call.time.rem_euclid(1_000_000_000) / 100
        );
        writeln!(
            out,
            r#"{{"time":"{t}","resourceId":"/SUBSCRIPTIONS/0B1C2D3E-0000-4000-8000-00000000AB12/RESOURCEGROUPS/RG-{envu}/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/{vaultu}","operationName":"{op}","operationVersion":"7.5","category":"AuditEvent","resultType":"Success","resultSignature":"{sig}","resultDescription":"","durationMs":"{dur}","callerIpAddress":"{ip}","correlationId":"{corr}","identity":{{"claim":{claim}}},"properties":{{"id":"{id}","clientInfo":"azsdk-net-Security.KeyVault.Secrets/4.6.0 (.NET 8.0.8; Linux)","httpStatusCode":{code},"requestUri":"{object}?api-version=7.5","isAccessPolicyMatch":false,"isRbacAuthorized":{rbac},"tlsVersion":"TLS1_2"}}}}"#,
            envu = s.env().to_uppercase(),
            vaultu = vault.to_uppercase(),
            dur = 5 + self.rng.below(40),
            ip = address(p, call.principal),
            corr = self.rng.uuid(),
            rbac = code != 403,
        )?;
        Ok(1)
    }

    fn k8s(
        &mut self,
        out: &mut impl Write,
        p: &Principal,
        s: &Secret,
        call: &Call,
    ) -> io::Result<u64> {
        let user = k8s_user(p);
        let ns = format!("{}-{}", s.team(), s.env());
        let (verb, name_part, code) = match call.kind {
            CallKind::List => ("list", String::new(), 200),
            CallKind::Write => ("update", format!(r#","name":"{}""#, s.name), 200),
            CallKind::Login => ("get", format!(r#","name":"{}""#, s.name), 200),
            CallKind::Denied => ("get", format!(r#","name":"{}""#, s.name), 403),
            CallKind::NotFound => ("get", format!(r#","name":"{}-old""#, s.name), 404),
            CallKind::Read => ("get", format!(r#","name":"{}""#, s.name), 200),
        };
        let uri = if name_part.is_empty() {
            format!("/api/v1/namespaces/{ns}/secrets")
        } else {
            format!("/api/v1/namespaces/{ns}/secrets/{}", s.name)
        };
        let audit_id = self.rng.uuid();
        let received = chrono::DateTime::from_timestamp_nanos(call.time)
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        let done = chrono::DateTime::from_timestamp_nanos(call.time + 2_000_000)
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        let ip = address(p, call.principal);
        let head = format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{audit_id}","requestURI":"{uri}","verb":"{verb}","user":{{"username":"{user}","uid":"{uid}","groups":["system:authenticated"]}},"sourceIPs":["{ip}"],"userAgent":"{agent}/1.4.2 (linux/amd64) kubernetes/$Format","objectRef":{{"resource":"secrets","namespace":"{ns}"{name_part},"apiVersion":"v1"}},"requestReceivedTimestamp":"{received}""#,
            uid = stable_uuid(&user),
            agent = p.name,
        );
        writeln!(
            out,
            r#"{head},"stage":"RequestReceived","stageTimestamp":"{received}"}}"#
        )?;
        let decision = if code == 403 { "forbid" } else { "allow" };
        let status = if code == 403 {
            format!(
                r#"{{"metadata":{{}},"status":"Failure","message":"secrets \"{}\" is forbidden: User \"{user}\" cannot get resource \"secrets\" in API group \"\" in the namespace \"{ns}\"","reason":"Forbidden","details":{{"name":"{}","kind":"secrets"}},"code":403}}"#,
                s.name, s.name
            )
        } else {
            format!(r#"{{"metadata":{{}},"code":{code}}}"#)
        };
        writeln!(
            out,
            r#"{head},"stage":"ResponseComplete","responseStatus":{status},"stageTimestamp":"{done}","annotations":{{"authorization.k8s.io/decision":"{decision}","authorization.k8s.io/reason":"RBAC: access by RoleBinding \"{ns}-read\""}}}}"#
        )?;
        Ok(2)
    }
}

/// Hex that depends only on `key` and `n`: the same secret has the same HMACs in every call.
fn stable_hex(key: &str, n: u64) -> String {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64 ^ n, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Rng::new(hash).hex(64)
}

/// CloudTrail writes whole seconds.
fn format_seconds(nanos: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
