//! Writing generated calls in each source's own format, with the identities vigil's parsers
//! derive from them (so labels name the same `actor_id` and `resource_id` as the stored rows).

use std::io::{self, Write};

use super::model::Op;
use super::population::{Agent, Client, Kind, Population, Principal, Secret};
use super::rng::{fnv1a, Rng, FNV_BASIS};
use super::traffic::{Call, Outcome};
use crate::event::SourceKind;
use crate::timerange::{rfc3339, NANOS_PER_DAY, NANOS_PER_HOUR};

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
    let hash = fnv1a(FNV_BASIS, name.as_bytes());
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
            let resource = if s.ssm {
                format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{}", s.path())
            } else {
                format!(
                    "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{}",
                    s.path()
                )
            };
            (actor, resource)
        }
        SourceKind::Gcp => (
            gcp_principal(p),
            format!("projects/acme-{}/secrets/{}", s.env(), s.flat_name()),
        ),
        SourceKind::Azure => (
            stable_uuid(&p.name),
            format!(
                "https://kv-{}.vault.azure.net/secrets/{}",
                s.env(),
                s.flat_name()
            ),
        ),
        SourceKind::K8s => (
            k8s_user(p),
            format!(
                "k8s:default/{}-{}/{}-{}",
                s.team_name,
                s.env(),
                s.scope,
                s.name
            ),
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
            let team = p.name.split('-').next().unwrap_or("app");
            format!("system:serviceaccount:{team}-{}:{}", p.env(), p.name)
        }
    }
}

pub struct Renderer {
    source: SourceKind,
    rng: Rng,
}

/// The user-agent string a client sends to `source`'s API.
fn user_agent(source: SourceKind, a: Agent, p: &Principal) -> String {
    let v = a.version;
    let browser = format!("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36");
    match (source, a.client) {
        (_, Client::Curl) => format!("curl/8.{}.0", v % 10),
        (_, Client::PythonRequests) => format!("python-requests/2.{v}.0"),
        (SourceKind::Vault, c) => match c {
            Client::Go => "Go-http-client/1.1".into(),
            Client::Python => format!("python-requests/2.{v}.0"),
            Client::Java => format!("Java-http-client/17.0.{v}"),
            Client::Node => format!("axios/1.{v}.0"),
            Client::VaultAgent | Client::Cli => {
                format!("Vault/v1.{v}.2 (+https://www.vaultproject.io/; go1.22.5)")
            }
            Client::Browser => browser,
            _ => format!("Terraform/1.{v}.0 (+https://www.terraform.io) terraform-provider-vault/4.2.0"),
        },
        (SourceKind::CloudTrail, c) => match c {
            Client::Go | Client::VaultAgent => format!("aws-sdk-go-v2/1.{v}.3 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/secretsmanager#1.32.0"),
            Client::Python => format!("Boto3/1.34.{v} md/Botocore#1.34.{v} ua/2.0 os/linux#5.10.219 md/arch#x86_64 lang/python#3.11.9 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.{v}"),
            Client::Java => format!("aws-sdk-java/2.25.{v} Linux/5.10 OpenJDK_64-Bit_Server_VM/17.0.11+9 Java/17.0.11 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/legacy"),
            Client::Node => format!("aws-sdk-js/3.5{v}.0 ua/2.0 os/linux#5.10 lang/js md/nodejs#20.12.2 api/secrets-manager#3.5{v}.0"),
            Client::Cli => format!("aws-cli/2.15.{v} Python/3.11.8 Darwin/23.4.0 exe/x86_64 prompt/off command/secretsmanager.get-secret-value"),
            Client::Browser => "AWS Internal".into(),
            _ => format!("APN/1.0 HashiCorp/1.0 Terraform/1.{v}.0 (+https://www.terraform.io) terraform-provider-aws/5.40.0"),
        },
        (SourceKind::Gcp, c) => match c {
            Client::Go | Client::VaultAgent => format!("google-api-go-client/0.5 grpc-go/1.{v}.0,gzip(gfe)"),
            Client::Python => format!("grpc-python/1.{v}.0 gl-python/3.11.9 gccl/2.19.0,gzip(gfe)"),
            Client::Java => format!("grpc-java-netty/1.{v}.0,gzip(gfe)"),
            Client::Node => format!("grpc-node-js/1.10.{v},gzip(gfe)"),
            Client::Cli => format!("google-cloud-sdk gcloud/4{v}.0.0 command/gcloud.secrets.versions.access,gzip(gfe)"),
            Client::Browser => format!("{browser},gzip(gfe)"),
            _ => format!("Terraform/1.{v}.0 (+https://www.terraform.io) terraform-provider-google/5.20.0,gzip(gfe)"),
        },
        (SourceKind::Azure, c) => match c {
            Client::Go | Client::VaultAgent => format!("azsdk-go-azsecrets/v1.1.{v} (go1.22.5; linux)"),
            Client::Python => format!("azsdk-python-keyvault-secrets/4.8.{v} Python/3.11.9 (Linux)"),
            Client::Java => format!("azsdk-java-azure-security-keyvault-secrets/4.8.{v} (17.0.11; Linux)"),
            Client::Node => format!("azsdk-js-keyvault-secrets/4.8.{v} core-rest-pipeline/1.15.2 Node/v20.12.2 OS/(x64-Linux)"),
            Client::Cli => format!("AZURECLI/2.5{v}.0 (DEB) azsdk-python-keyvault-secrets/4.7.0 Python/3.11.8 (Linux)"),
            Client::Browser => browser,
            _ => format!("Terraform/1.{v}.0 terraform-provider-azurerm/3.90.0"),
        },
        (SourceKind::K8s, c) => match c {
            Client::Go | Client::VaultAgent => {
                let app = p.name.split('-').nth(1).unwrap_or("app");
                format!("{app}/v1.{v}.0 (linux/amd64) kubernetes/$Format")
            }
            Client::Python => format!("OpenAPI-Generator/29.0.{v}/python"),
            Client::Java => format!("kubernetes-client-java/19.0.{v}"),
            Client::Node => format!("kubernetes-client-node/0.20.{v}"),
            Client::Cli => format!("kubectl/v1.{}.3 (darwin/arm64) kubernetes/6813625", 20 + v % 10),
            Client::Browser => browser,
            _ => format!("HashiCorp/1.0 Terraform/1.{v}.0"),
        },
    }
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
        let agent = user_agent(self.source, call.agent, p);
        match self.source {
            SourceKind::Vault => self.vault(out, p, s, call, &agent),
            SourceKind::CloudTrail => self.cloudtrail(out, p, s, call, &agent),
            SourceKind::Gcp => self.gcp(out, p, s, call, &agent),
            SourceKind::Azure => self.azure(out, p, s, call, &agent),
            SourceKind::K8s => self.k8s(out, p, s, call, &agent),
        }
    }

    fn hmac(&mut self) -> String {
        format!("hmac-sha256:{}", self.rng.hex(64))
    }

    fn vault(
        &mut self,
        out: &mut impl Write,
        p: &Principal,
        s: &Secret,
        call: &Call,
        agent: &str,
    ) -> io::Result<u64> {
        let id = self.rng.uuid();
        let entity = stable_uuid(&p.name);
        // A token lives for an hour of calls, issued at the hour's start.
        let hour = call.time.div_euclid(NANOS_PER_HOUR);
        let token = format!(
            "hmac-sha256:{}",
            stable_hex(&format!("{}-{hour}", p.name), 6)
        );
        let accessor = format!(
            "hmac-sha256:{}",
            &stable_uuid(&format!("acc-{}", p.name)).replace('-', "")[..32].repeat(2)
        );
        let team = p.name.split('-').next().unwrap_or("team");
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
                    r#"{{"role":"{team}","service_account_name":"{}","service_account_namespace":"{team}-{}","service_account_uid":"{}"}}"#,
                    p.name,
                    p.env(),
                    stable_uuid(&p.name)
                ),
            ),
        };
        // A person's policy is their team's at the time of the call (people move teams).
        let policy = match p.kind {
            Kind::Human => format!(
                "{}-engineer",
                super::population::team_name(p.set_at(call.time).team)
            ),
            Kind::Workload => format!("{}-read", p.name),
        };
        let dir = format!("{}/{}/{}", s.env(), s.team_name, s.scope);
        let version = 1 + (s.name.len() as u64 + call.secret as u64) % 9;
        let kv = ("secret/", "kv");
        // (operation, path, (mount point, mount type), request data, response data)
        let (operation, path, (mount, mount_type), req_data, resp_data) = match call.op {
            Op::List => (
                "list",
                format!("secret/metadata/{dir}/"),
                kv,
                String::new(),
                format!(
                    r#","data":{{"keys":["{}","{}"]}}"#,
                    self.hmac(),
                    self.hmac()
                ),
            ),
            Op::MetaRead if call.secret.is_multiple_of(2) => (
                "read",
                format!("sys/policies/acl/{policy}"),
                ("sys/", "system"),
                String::new(),
                format!(
                    r#","data":{{"name":"{policy}","policy":"{}"}}"#,
                    self.hmac()
                ),
            ),
            Op::MetaRead => (
                "read",
                format!("secret/metadata/{}", s.path()),
                kv,
                String::new(),
                format!(
                    r#","data":{{"current_version":{version},"max_versions":0,"oldest_version":1,"updated_time":"{}"}}"#,
                    self.hmac()
                ),
            ),
            Op::Update | Op::Patch => (
                if call.op == Op::Update {
                    "update"
                } else {
                    "patch"
                },
                format!("secret/data/{}", s.path()),
                kv,
                format!(
                    r#","data":{{"data":{{"password":"{}"}},"options":{{"cas":{version}}}}}"#,
                    self.hmac()
                ),
                format!(
                    r#","data":{{"created_time":"{}","deletion_time":"{}","destroyed":false,"version":{}}}"#,
                    self.hmac(),
                    self.hmac(),
                    version + 1
                ),
            ),
            Op::Delete if call.secret.is_multiple_of(5) => (
                "delete",
                format!("secret/metadata/{}", s.path()),
                kv,
                String::new(),
                String::new(),
            ),
            Op::Delete => (
                "delete",
                format!("secret/data/{}", s.path()),
                kv,
                String::new(),
                String::new(),
            ),
            Op::Login if p.kind == Kind::Human => (
                "update",
                "auth/oidc/oidc/callback".to_owned(),
                ("auth/oidc/", "oidc"),
                format!(
                    r#","data":{{"code":"{}","state":"{}"}}"#,
                    self.hmac(),
                    self.hmac()
                ),
                String::new(),
            ),
            Op::Login => (
                "update",
                "auth/kubernetes/login".to_owned(),
                ("auth/kubernetes/", "kubernetes"),
                format!(
                    r#","data":{{"jwt":"{}","role":"{}"}}"#,
                    self.hmac(),
                    self.hmac()
                ),
                String::new(),
            ),
            Op::Read => (
                "read",
                format!("secret/data/{}", s.path()),
                kv,
                String::new(),
                format!(
                    r#","data":{{"data":{{"password":"hmac-sha256:{h1}","username":"hmac-sha256:{h2}"}},"metadata":{{"created_time":"hmac-sha256:{h3}","custom_metadata":null,"deletion_time":"hmac-sha256:{h4}","destroyed":false,"version":{version}}}}}"#,
                    h1 = stable_hex(&s.path(), 1),
                    h2 = stable_hex(&s.path(), 2),
                    h3 = stable_hex(&s.path(), 3),
                    h4 = stable_hex(&s.path(), 4),
                ),
            ),
        };
        let allowed = call.outcome != Outcome::Denied;
        let port = 30_000 + self.rng.below(30_000);
        let issue = rfc3339(hour * NANOS_PER_HOUR);
        let granting = if allowed {
            format!(r#"{{"name":"{policy}","namespace_id":"root","type":"acl"}}"#)
        } else {
            String::new()
        };
        let auth = format!(
            r#"{{"client_token":"{token}","accessor":"{accessor}","display_name":"{display}","policies":["default","{policy}"],"token_policies":["default","{policy}"],"identity_policies":[],"metadata":{method_meta},"entity_id":"{entity}","token_type":"service","token_ttl":3600,"token_issue_time":"{issue}","policy_results":{{"allowed":{allowed},"granting_policies":[{granting}]}}}}"#
        );
        let request = format!(
            r#"{{"id":"{id}","client_id":"{entity}","operation":"{operation}","mount_point":"{mount}","mount_type":"{mount_type}","mount_accessor":"{mount_type}_1f0c2e7a","mount_running_version":"v0.20.0+builtin","mount_class":"secret","client_token":"{token}","client_token_accessor":"{accessor}","namespace":{{"id":"root"}},"path":"{path}"{req_data},"remote_address":"{ip}","remote_port":{port},"headers":{{"user-agent":["{agent}"]}}}}"#,
            ip = call.ip,
        );
        let t_req = rfc3339(call.time);
        let t_resp = rfc3339(call.time + 1_000_000 + self.rng.below(9_000_000) as i64);
        let (req_error, resp_error, response) = match call.outcome {
            Outcome::Denied => (
                r#","error":"permission denied""#.to_owned(),
                r#","error":"1 error occurred:\n\t* permission denied\n\n""#.to_owned(),
                format!(
                    r#"{{"mount_type":"{mount_type}","data":{{"error":"{}"}}}}"#,
                    self.hmac()
                ),
            ),
            Outcome::NotFound => (
                String::new(),
                String::new(),
                format!(r#"{{"mount_type":"{mount_type}"}}"#),
            ),
            Outcome::Ok => (
                String::new(),
                String::new(),
                format!(
                    r#"{{"mount_type":"{mount_type}","mount_accessor":"{mount_type}_1f0c2e7a","mount_running_plugin_version":"v0.20.0+builtin","mount_class":"secret"{resp_data}}}"#
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
        agent: &str,
    ) -> io::Result<u64> {
        let (actor, _) = identity(SourceKind::CloudTrail, p, s);
        let user_identity = match p.kind {
            Kind::Human => format!(
                r#"{{"type":"IAMUser","principalId":"AIDA{}","arn":"{actor}","accountId":"{ACCOUNT}","accessKeyId":"AKIA{}","userName":"{}"}}"#,
                stable_hex(&p.name, 0)[..16].to_uppercase(),
                stable_hex(&p.name, 7)[..16].to_uppercase(),
                p.name
            ),
            Kind::Workload => {
                // A role session (and its key) serves a day of calls.
                let day = call.time.div_euclid(NANOS_PER_DAY);
                let session = stable_hex(&format!("{}-{day}", p.name), 3)[..32].to_owned();
                format!(
                    r#"{{"type":"AssumedRole","principalId":"AROA{}:{session}","arn":"arn:aws:sts::{ACCOUNT}:assumed-role/{}/{session}","accountId":"{ACCOUNT}","accessKeyId":"ASIA{}","sessionContext":{{"sessionIssuer":{{"type":"Role","principalId":"AROA{}","arn":"{actor}","accountId":"{ACCOUNT}","userName":"{}"}},"attributes":{{"creationDate":"{}","mfaAuthenticated":"false"}}}}}}"#,
                    stable_hex(&p.name, 0)[..16].to_uppercase(),
                    p.name,
                    stable_hex(&format!("{}-{day}", p.name), 8)[..16].to_uppercase(),
                    stable_hex(&p.name, 0)[..16].to_uppercase(),
                    p.name,
                    format_seconds(day * NANOS_PER_DAY)
                )
            }
        };
        let (service, name, params, error, read_only) = if s.ssm {
            self.ssm_call(&actor, s, call)
        } else {
            self.secrets_manager_call(&actor, p, s, call)
        };
        writeln!(
            out,
            r#"{{"eventVersion":"1.10","userIdentity":{user_identity},"eventTime":"{}","eventSource":"{service}.amazonaws.com","eventName":"{name}","awsRegion":"{REGION}","sourceIPAddress":"{ip}","userAgent":"{agent}","requestParameters":{params},"responseElements":null{error},"requestID":"{}","eventID":"{}","readOnly":{read_only},"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"{ACCOUNT}","eventCategory":"Management","tlsDetails":{{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"{service}.{REGION}.amazonaws.com"}}}}"#,
            format_seconds(call.time),
            self.rng.uuid(),
            self.rng.uuid(),
            ip = call.ip,
        )?;
        Ok(1)
    }

    /// (service, eventName, requestParameters, error fields, readOnly) of Secrets Manager.
    fn secrets_manager_call(
        &mut self,
        actor: &str,
        p: &Principal,
        s: &Secret,
        call: &Call,
    ) -> (&'static str, &'static str, String, String, bool) {
        let arn = format!(
            "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{}-{}",
            s.path(),
            &stable_hex(&s.path(), 9)[..6]
        );
        let by_arn = format!(r#"{{"secretId":"{arn}"}}"#);
        let sm = "secretsmanager";
        match (call.outcome, call.op) {
            (Outcome::Denied, _) => (sm, "GetSecretValue", "null".to_owned(), format!(r#","errorCode":"AccessDenied","errorMessage":"User: {actor} is not authorized to perform: secretsmanager:GetSecretValue on resource: {} because no identity-based policy allows the secretsmanager:GetSecretValue action""#, s.path()), true),
            (Outcome::NotFound, _) => (sm, "GetSecretValue", format!(r#"{{"secretId":"{}"}}"#, s.path()), r#","errorCode":"ResourceNotFoundException","errorMessage":"Secrets Manager can't find the specified secret.""#.to_owned(), true),
            (_, Op::Read) => (sm, "GetSecretValue", by_arn, String::new(), true),
            (_, Op::List) => (sm, "ListSecrets", format!(r#"{{"maxResults":100,"filters":[{{"key":"name","values":["{}/{}"]}}]}}"#, s.env(), s.team_name), String::new(), true),
            (_, Op::MetaRead) if p.kind == Kind::Human => (sm, "GetResourcePolicy", by_arn, String::new(), true),
            (_, Op::MetaRead | Op::Login) => (sm, "DescribeSecret", by_arn, String::new(), true),
            // A rotation Lambda's work is logged under the role of the service that owns it.
            (_, Op::Update) if p.kind == Kind::Workload && call.secret.is_multiple_of(2) => (sm, "RotateSecret", format!(r#"{{"secretId":"{arn}","rotateImmediately":true}}"#), String::new(), false),
            (_, Op::Update) => (sm, "PutSecretValue", format!(r#"{{"secretId":"{arn}","clientRequestToken":"{}","secretString":"HIDDEN_DUE_TO_SECURITY_REASONS"}}"#, self.rng.uuid()), String::new(), false),
            (_, Op::Patch) => (sm, "UpdateSecretVersionStage", format!(r#"{{"secretId":"{arn}","versionStage":"AWSCURRENT","moveToVersionId":"{}"}}"#, self.rng.uuid()), String::new(), false),
            (_, Op::Delete) => (sm, "DeleteSecret", format!(r#"{{"secretId":"{arn}","recoveryWindowInDays":30}}"#), String::new(), false),
        }
    }

    /// The same for SSM Parameter Store (SecureString parameters named by the secret's path).
    fn ssm_call(
        &mut self,
        actor: &str,
        s: &Secret,
        call: &Call,
    ) -> (&'static str, &'static str, String, String, bool) {
        let name = format!("/{}", s.path());
        let ssm = "ssm";
        match (call.outcome, call.op) {
            (Outcome::Denied, _) => (
                ssm,
                "GetParameter",
                "null".to_owned(),
                format!(
                    r#","errorCode":"AccessDenied","errorMessage":"User: {actor} is not authorized to perform: ssm:GetParameter on resource: arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name} because no identity-based policy allows the ssm:GetParameter action""#
                ),
                true,
            ),
            (Outcome::NotFound, _) => (
                ssm,
                "GetParameter",
                format!(r#"{{"name":"{name}","withDecryption":true}}"#),
                r#","errorCode":"ParameterNotFound","errorMessage":"""#.to_owned(),
                true,
            ),
            (_, Op::Read) => (
                ssm,
                "GetParameter",
                format!(r#"{{"name":"{name}","withDecryption":true}}"#),
                String::new(),
                true,
            ),
            (_, Op::List) => (
                ssm,
                "GetParametersByPath",
                format!(
                    r#"{{"path":"/{}/{}/{}","recursive":true,"withDecryption":true}}"#,
                    s.env(),
                    s.team_name,
                    s.scope
                ),
                String::new(),
                true,
            ),
            (_, Op::MetaRead | Op::Login) => (
                ssm,
                "DescribeParameters",
                format!(
                    r#"{{"parameterFilters":[{{"key":"Name","option":"Equals","values":["{name}"]}}]}}"#
                ),
                String::new(),
                true,
            ),
            (_, Op::Update | Op::Patch) => (
                ssm,
                "PutParameter",
                format!(
                    r#"{{"name":"{name}","type":"SecureString","overwrite":true,"keyId":"alias/aws/ssm"}}"#
                ),
                String::new(),
                false,
            ),
            (_, Op::Delete) => (
                ssm,
                "DeleteParameter",
                format!(r#"{{"name":"{name}"}}"#),
                String::new(),
                false,
            ),
        }
    }

    fn gcp(
        &mut self,
        out: &mut impl Write,
        p: &Principal,
        s: &Secret,
        call: &Call,
        agent: &str,
    ) -> io::Result<u64> {
        let (who, secret) = identity(SourceKind::Gcp, p, s);
        let project = format!("projects/acme-{}", s.env());
        let ok = "{}".to_owned();
        let (method, resource, status, granted, log, permission) = match (call.outcome, call.op) {
            (Outcome::Denied, _) => (
                "AccessSecretVersion",
                format!("{secret}/versions/latest"),
                format!(
                    r#"{{"code":7,"message":"Permission 'secretmanager.versions.access' denied on resource '{secret}/versions/latest' (or it may not exist)."}}"#
                ),
                false,
                "data_access",
                "secretmanager.versions.access",
            ),
            (Outcome::NotFound, _) => (
                "AccessSecretVersion",
                format!("{secret}/versions/9"),
                r#"{"code":5,"message":"Secret Version not found"}"#.to_owned(),
                true,
                "data_access",
                "secretmanager.versions.access",
            ),
            (_, Op::Read) => (
                "AccessSecretVersion",
                format!("{secret}/versions/latest"),
                ok,
                true,
                "data_access",
                "secretmanager.versions.access",
            ),
            (_, Op::List) if p.kind == Kind::Human => (
                "ListSecrets",
                project,
                ok,
                true,
                "data_access",
                "secretmanager.secrets.list",
            ),
            (_, Op::List) => (
                "ListSecretVersions",
                secret,
                ok,
                true,
                "data_access",
                "secretmanager.versions.list",
            ),
            (_, Op::MetaRead) if p.kind == Kind::Human => (
                "GetIamPolicy",
                secret,
                ok,
                true,
                "data_access",
                "secretmanager.secrets.getIamPolicy",
            ),
            (_, Op::MetaRead | Op::Login) => (
                "GetSecret",
                secret,
                ok,
                true,
                "data_access",
                "secretmanager.secrets.get",
            ),
            (_, Op::Update) => (
                "AddSecretVersion",
                secret,
                ok,
                true,
                "activity",
                "secretmanager.versions.add",
            ),
            (_, Op::Patch) => (
                "UpdateSecret",
                secret,
                ok,
                true,
                "activity",
                "secretmanager.secrets.update",
            ),
            (_, Op::Delete) => (
                "DestroySecretVersion",
                format!("{secret}/versions/{}", 1 + call.secret % 3),
                ok,
                true,
                "activity",
                "secretmanager.versions.destroy",
            ),
        };
        let ts = rfc3339(call.time);
        writeln!(
            out,
            r#"{{"insertId":"{}","logName":"projects/acme-{env}/logs/cloudaudit.googleapis.com%2F{log}","protoPayload":{{"@type":"type.googleapis.com/google.cloud.audit.AuditLog","status":{status},"authenticationInfo":{{"principalEmail":"{who}"}},"requestMetadata":{{"callerIp":"{ip}","callerSuppliedUserAgent":"{agent}","requestAttributes":{{"time":"{ts}","auth":{{}}}},"destinationAttributes":{{}}}},"serviceName":"secretmanager.googleapis.com","methodName":"google.cloud.secretmanager.v1.SecretManagerService.{method}","authorizationInfo":[{{"permission":"{permission}","granted":{granted},"resource":"{resource}","resourceAttributes":{{"service":"secretmanager.googleapis.com","name":"{resource}"}},"permissionType":"{ptype}"}}],"resourceName":"{resource}"}},"resource":{{"type":"audited_resource","labels":{{"service":"secretmanager.googleapis.com","method":"google.cloud.secretmanager.v1.SecretManagerService.{method}","project_id":"acme-{env}"}}}},"timestamp":"{ts}","severity":"{sev}","receiveTimestamp":"{recv}"}}"#,
            self.rng.hex(12),
            env = s.env(),
            ip = call.ip,
            sev = if call.outcome == Outcome::Ok {
                "INFO"
            } else {
                "ERROR"
            },
            recv = rfc3339(call.time + 600_000_000),
            ptype = if log == "activity" {
                "ADMIN_WRITE"
            } else {
                "DATA_READ"
            },
        )?;
        Ok(1)
    }

    fn azure(
        &mut self,
        out: &mut impl Write,
        p: &Principal,
        s: &Secret,
        call: &Call,
        agent: &str,
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
        let object = format!("https://{vault}.vault.azure.net/secrets/{}", s.flat_name());
        let version = stable_hex(&s.path(), 5)[..32].to_owned();
        let (op, code, sig, id) = match (call.outcome, call.op) {
            (Outcome::Denied, _) => ("SecretGet", 403, "Forbidden", object.clone()),
            (Outcome::NotFound, _) => ("SecretGet", 404, "NotFound", object.clone()),
            (_, Op::Read) => ("SecretGet", 200, "OK", format!("{object}/{version}")),
            (_, Op::List) => (
                "SecretList",
                200,
                "OK",
                format!("https://{vault}.vault.azure.net/secrets"),
            ),
            (_, Op::MetaRead | Op::Login) => ("SecretGetVersions", 200, "OK", object.clone()),
            (_, Op::Update) => (
                "SecretSet",
                200,
                "OK",
                format!("{object}/{}", self.rng.hex(32)),
            ),
            (_, Op::Patch) => ("SecretUpdate", 200, "OK", format!("{object}/{version}")),
            (_, Op::Delete) => ("SecretDelete", 200, "OK", object.clone()),
        };
        // Azure writes seven fraction digits (100 ns ticks).
        let t = format!(
            "{}.{:07}Z",
            chrono::DateTime::from_timestamp_nanos(call.time).format("%Y-%m-%dT%H:%M:%S"),
            call.time.rem_euclid(1_000_000_000) / 100
        );
        writeln!(
            out,
            r#"{{"time":"{t}","resourceId":"/SUBSCRIPTIONS/0B1C2D3E-0000-4000-8000-00000000AB12/RESOURCEGROUPS/RG-{envu}/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/{vaultu}","operationName":"{op}","operationVersion":"7.5","category":"AuditEvent","resultType":"Success","resultSignature":"{sig}","resultDescription":"","durationMs":"{dur}","callerIpAddress":"{ip}","correlationId":"{corr}","identity":{{"claim":{claim}}},"properties":{{"id":"{id}","clientInfo":"{agent}","httpStatusCode":{code},"requestUri":"{object}?api-version=7.5","isAccessPolicyMatch":false,"isRbacAuthorized":{rbac},"tlsVersion":"TLS1_2"}}}}"#,
            envu = s.env().to_uppercase(),
            vaultu = vault.to_uppercase(),
            dur = 5 + self.rng.below(40),
            ip = call.ip,
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
        agent: &str,
    ) -> io::Result<u64> {
        let user = k8s_user(p);
        let ns = format!("{}-{}", s.team_name, s.env());
        let name = format!("{}-{}", s.scope, s.name);
        let (verb, named) = match (call.outcome, call.op) {
            (Outcome::Ok, Op::List) if p.kind == Kind::Workload => ("watch", false),
            (Outcome::Ok, Op::List | Op::MetaRead) => ("list", false),
            (Outcome::Ok, Op::Update) => ("update", true),
            (Outcome::Ok, Op::Patch) => ("patch", true),
            (Outcome::Ok, Op::Delete) => ("delete", true),
            _ => ("get", true),
        };
        let code = match call.outcome {
            Outcome::Ok => 200,
            Outcome::Denied => 403,
            Outcome::NotFound => 404,
        };
        let name = if call.outcome == Outcome::NotFound {
            format!("{name}-old")
        } else {
            name
        };
        let (uri, name_part) = if named {
            (
                format!("/api/v1/namespaces/{ns}/secrets/{name}"),
                format!(r#","name":"{name}""#),
            )
        } else if verb == "watch" {
            (
                format!("/api/v1/namespaces/{ns}/secrets?allowWatchBookmarks=true&watch=true"),
                String::new(),
            )
        } else {
            (format!("/api/v1/namespaces/{ns}/secrets"), String::new())
        };
        let audit_id = self.rng.uuid();
        let received = chrono::DateTime::from_timestamp_nanos(call.time)
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        let done = chrono::DateTime::from_timestamp_nanos(call.time + 2_000_000)
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        let head = format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{audit_id}","requestURI":"{uri}","verb":"{verb}","user":{{"username":"{user}","uid":"{uid}","groups":["system:authenticated"]}},"sourceIPs":["{ip}"],"userAgent":"{agent}","objectRef":{{"resource":"secrets","namespace":"{ns}"{name_part},"apiVersion":"v1"}},"requestReceivedTimestamp":"{received}""#,
            uid = stable_uuid(&user),
            ip = call.ip,
        );
        writeln!(
            out,
            r#"{head},"stage":"RequestReceived","stageTimestamp":"{received}"}}"#
        )?;
        let annotations = if code == 403 {
            r#"{"authorization.k8s.io/decision":"forbid","authorization.k8s.io/reason":""}"#
                .to_owned()
        } else {
            format!(
                r#"{{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by RoleBinding \"{ns}-read\""}}"#
            )
        };
        let status = if code == 403 {
            format!(
                r#"{{"metadata":{{}},"status":"Failure","message":"secrets \"{name}\" is forbidden: User \"{user}\" cannot {verb} resource \"secrets\" in API group \"\" in the namespace \"{ns}\"","reason":"Forbidden","details":{{"name":"{name}","kind":"secrets"}},"code":403}}"#
            )
        } else {
            format!(r#"{{"metadata":{{}},"code":{code}}}"#)
        };
        writeln!(
            out,
            r#"{head},"stage":"ResponseComplete","responseStatus":{status},"stageTimestamp":"{done}","annotations":{annotations}}}"#
        )?;
        Ok(2)
    }
}

/// Hex that depends only on `key` and `n`: the same secret has the same HMACs in every call.
fn stable_hex(key: &str, n: u64) -> String {
    let hash = fnv1a(FNV_BASIS ^ n, key.as_bytes());
    Rng::new(hash).hex(64)
}

/// CloudTrail writes whole seconds.
fn format_seconds(nanos: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
