//! Secret values never reach the store (every column decoded through DataFusion), the rejects
//! file, or anything vigil prints.

use crate::common::*;

const SENTINELS: [&str; 8] = [
    "SENTINEL-kv-password-7f3a",
    "hvs.SENTINELtokenAAAAAAAAAAAAAAAAAA",
    "SENTINEL-written-value-91c2",
    "SENTINEL-session-token-4b8d",
    "SENTINEL/secret/access/key",
    "SENTINEL-in-a-broken-line",
    // base64 of "SENTINEL-k8s-secret": Kubernetes secret data is base64 in requestObject.
    "U0VOVElORUwtazhzLXNlY3JldA==",
    // base64 of "SENTINEL-gcp-payload": a Secret Manager version payload.
    "U0VOVElORUwtZ2NwLXBheWxvYWQ=",
];

fn raw_device_log() -> String {
    // A Vault device with log_raw = true writes values and tokens in clear.
    let read = format!(
        r#"{{"time":"2026-03-02T10:00:00Z","type":"response","auth":{{"client_token":"{t}","accessor":"acc-1","display_name":"oidc-alice","entity_id":"ent-alice","policies":["default"]}},"request":{{"id":"raw-1","operation":"read","path":"secret/data/app/db","mount_point":"secret/","mount_type":"kv","client_token":"{t}","remote_address":"10.0.0.1"}},"response":{{"data":{{"data":{{"password":"{p}","port":5432}},"metadata":{{"version":2}}}}}}}}"#,
        t = SENTINELS[1],
        p = SENTINELS[0]
    );
    let write = format!(
        r#"{{"time":"2026-03-02T10:01:00Z","type":"request","auth":{{"display_name":"oidc-alice","entity_id":"ent-alice"}},"request":{{"id":"raw-2","operation":"update","path":"secret/data/app/api","mount_point":"secret/","mount_type":"kv","data":{{"data":{{"key":"{w}"}}}}}}}}"#,
        w = SENTINELS[2]
    );
    let broken = format!(
        r#"{{"time":"2026-03-02T10:02:00Z","type":"response","request":{{"id":"raw-3","data":{{"password":"{b}""#,
        b = SENTINELS[5]
    );
    format!("{read}\n{write}\n{broken}\n")
}

fn assume_role_with_credentials() -> String {
    format!(
        r#"{{"Records":[{{"eventVersion":"1.09","userIdentity":{{"type":"AWSService","invokedBy":"ec2.amazonaws.com"}},"eventTime":"2026-03-02T10:00:00Z","eventSource":"sts.amazonaws.com","eventName":"AssumeRole","awsRegion":"eu-west-1","sourceIPAddress":"ec2.amazonaws.com","userAgent":"ec2.amazonaws.com","requestParameters":{{"roleArn":"arn:aws:iam::111122223333:role/app","roleSessionName":"i-1"}},"responseElements":{{"credentials":{{"accessKeyId":"ASIAEXAMPLE","sessionToken":"{s}","secretAccessKey":"{k}","expiration":"x"}}}},"requestID":"r","eventID":"ev-1","eventType":"AwsApiCall","recipientAccountId":"111122223333"}}]}}"#,
        s = SENTINELS[3],
        k = SENTINELS[4]
    )
}

fn k8s_with_secret_data() -> String {
    let data = SENTINELS[6];
    let event = format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"k-1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/prod/secrets","verb":"create","user":{{"username":"oidc:alice@acme.example"}},"sourceIPs":["10.0.0.9"],"objectRef":{{"resource":"secrets","namespace":"prod","name":"db","apiVersion":"v1"}},"responseStatus":{{"code":201}},"requestObject":{{"kind":"Secret","data":{{"password":"{data}"}}}},"responseObject":{{"kind":"Secret","data":{{"password":"{data}"}}}},"requestReceivedTimestamp":"2026-03-02T10:00:00.000001Z","stageTimestamp":"2026-03-02T10:00:00.000002Z"}}"#
    );
    // The same kind of event cut short: it is rejected, and its data must not reach the rejects.
    let broken = format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"k-2","stage":"ResponseComplete","verb":"create","requestObject":{{"kind":"Secret","data":{{"password":"{data}""#
    );
    format!("{event}\n{broken}\n")
}

fn assert_clean(what: &str, text: &str) {
    for s in SENTINELS {
        assert!(
            !text.contains(s),
            "{what} contains secret sentinel {s}:\n{text}"
        );
    }
}

#[test]
fn sentinel_secrets_are_removed_everywhere_and_the_removal_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let vault = write(&dir.path().join("in/vault.log"), raw_device_log());
    let ct = write(
        &dir.path().join("in/ct.json"),
        assume_role_with_credentials(),
    );
    let k8s = write(&dir.path().join("in/k8s.log"), k8s_with_secret_data());
    // Its cut last record is rejected, not left waiting for its end.
    make_old(&k8s);
    let gcp = crate::common::fixture("gcp/golden.jsonl");
    let store = dir.path().join("store");
    let r = run(vigil(&store)
        .args(["ingest"])
        .arg(&vault)
        .arg(&ct)
        .arg(&k8s)
        .arg(&gcp));
    assert_eq!(r.code, 1, "one broken line is rejected: {}", r.stderr);
    assert_clean("ingest stderr", &r.stderr);
    assert_clean("ingest stdout", &r.stdout);

    // Every column of every row, decoded by DataFusion and rendered as text.
    let all = run(vigil(&store).args(["sql", "--format", "jsonl", "SELECT * FROM events"]));
    assert_eq!(all.code, 0, "{}", all.stderr);
    assert_eq!(all.stdout.lines().count(), 3 + 1 + 7);
    assert_clean("stored rows", &all.stdout);
    let csv = run(vigil(&store).args(["sql", "--format", "csv", "SELECT * FROM events"]));
    assert_clean("stored rows as csv", &csv.stdout);

    // The rejects file is redacted too.
    let rejects: Vec<_> = walk(&store.join("rejects"));
    assert_eq!(rejects.len(), 1);
    let text = std::fs::read_to_string(&rejects[0]).unwrap();
    assert!(
        text.contains("raw-3"),
        "the reject keeps identifying fields: {text}"
    );
    assert_clean("rejects file", &text);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.contains("k-2"),
        "the reject keeps identifying fields: {text}"
    );

    // The removal is recorded on the rows.
    let warnings = sql(
        &store,
        "SELECT event_uid, parse_warnings FROM events WHERE source IN ('vault', 'cloudtrail') ORDER BY event_uid",
    );
    let k8s_row = sql(
        &store,
        "SELECT parse_warnings FROM events WHERE source = 'k8s'",
    );
    assert_eq!(
        k8s_row[0]["parse_warnings"],
        serde_json::json!([
            "secret_redacted:requestObject",
            "secret_redacted:responseObject"
        ])
    );
    let gcp_row = sql(
        &store,
        "SELECT parse_warnings FROM events WHERE operation = 'AddSecretVersion'",
    );
    assert_eq!(
        gcp_row[0]["parse_warnings"],
        serde_json::json!(["secret_redacted:protoPayload.request.payload.data"])
    );
    let w = |i: usize| warnings[i]["parse_warnings"].to_string();
    assert!(
        w(0).contains("secret_redacted:responseElements.credentials.secretAccessKey"),
        "{}",
        w(0)
    );
    assert!(
        w(0).contains("secret_redacted:responseElements.credentials.sessionToken"),
        "{}",
        w(0)
    );
    assert!(
        w(1).contains("secret_redacted:log_raw_values=3"),
        "{}",
        w(1)
    );
    assert!(
        w(2).contains("secret_redacted:log_raw_values=1"),
        "{}",
        w(2)
    );
}

/// Regression: a Cloud Logging export mixing Secret Manager and GKE entries routes each entry to
/// its source, so a GKE entry's secret body is removed as Kubernetes data.
#[test]
fn a_mixed_cloud_logging_export_routes_gke_entries_to_k8s() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = std::fs::read_to_string(crate::common::fixture("gcp/golden.jsonl")).unwrap();
    text.push_str(&format!(
        r#"{{"insertId":"gke-9","logName":"projects/acme-prod/logs/cloudaudit.googleapis.com%2Factivity","operation":{{"id":"op-9"}},"protoPayload":{{"@type":"type.googleapis.com/google.cloud.audit.AuditLog","authenticationInfo":{{"principalEmail":"alice@acme.example"}},"serviceName":"k8s.io","methodName":"io.k8s.core.v1.secrets.create","resourceName":"core/v1/namespaces/prod/secrets/db","request":{{"kind":"Secret","data":{{"password":"{d}"}}}},"status":{{}}}},"resource":{{"type":"k8s_cluster","labels":{{"cluster_name":"gke-prod"}}}},"timestamp":"2026-03-02T12:00:00Z"}}"#,
        d = SENTINELS[6]
    ));
    text.push('\n');
    let input = write(&dir.path().join("in/export.jsonl"), text);
    let store = dir.path().join("store");
    let (code, report) = ingest(&store, &[&input], &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(tally(&report, "gcp"), [7, 7, 0, 0, 0, 7]);
    assert_eq!(tally(&report, "k8s"), [1, 1, 0, 0, 0, 1]);
    let all = run(vigil(&store).args(["sql", "--format", "jsonl", "SELECT * FROM events"]));
    assert_clean("stored rows", &all.stdout);
    let row = sql(
        &store,
        "SELECT event_uid, action, parse_warnings FROM events WHERE source = 'k8s'",
    );
    assert_eq!(row[0]["event_uid"], "k8s:gke-prod:op-9");
    assert_eq!(row[0]["action"], "write");
    assert_eq!(
        row[0]["parse_warnings"],
        serde_json::json!(["secret_redacted:protoPayload.request"])
    );
}
